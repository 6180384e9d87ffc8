# Single flight across a fleet: three nginx instances (nodes) of two
# workers each share one Redis and one filing API.  Before asking the API
# about a domain Redis does not have, a worker looks once more and takes
# the domain's lock in Redis in one step (a script: the verdict, or SET
# <prefix>lock:<domain> NX PX); the others look again until the verdict is
# there, so a storm of one cold domain over every node costs one API
# request.  A holder whose request fails gives the lock up at once; one that
# dies leaves it to expire; a give-up Redis answers late crashes nothing.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Conf;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'storm.cn' => ['filed', delay_ms => 500],
             'flaky.cn' => ['500', delay_ms => 200],
             'dies.cn'  => ['filed', delay_ms => 1500],
             'late.cn'  => ['500', delay_ms => 400] },
    api_default => 'unfiled');

# node 1 is $t; nodes 2 and 3 share its Redis and filing API
my @nodes = ($t, map { IcpGate::Test->new } 1 .. 2);
for my $node (@nodes) {
    $node->{ports}{$_} = $t->port($_) for qw(redis api);
    $node->write_conf(gate_conf($node,
        main  => 'icp_gate_api_timeout 2s;',
        redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% timeout=1s;',
        http  => 'icp_gate_wait 10s;'));
    $node->start_nginx;
}
my @ports = map { $_->port('http') } @nodes;

# Redis commands of a kind so far
sub calls($cmd) {
    my ($line) = grep { /^cmdstat_$cmd:/ } $t->redis(qw(INFO commandstats));
    return $line && $line =~ /calls=(\d+)/ ? $1 : 0;
}

# 3 x 100 clients of one cold domain at once, spread over the nodes
my ($looks, $reads) = (calls('eval'), calls('hgetall'));
my $start = time;
my $statuses = $t->http_parallel(300, host => 'play.storm.cn',
                                 port => sub ($i) { $ports[$i % 3] });
my $took = time - $start;
my %got;
$got{$_}++ for @$statuses;
is_deeply \%got, { 200 => 300 }, '300 clients over 3 nodes: all 200';
is $t->api_count('storm.cn'), 1, 'one filing API request for the fleet';
diag sprintf 'a storm of 300 clients of one cold domain over 3 nodes: %d filing '
    . 'API request(s), %.2fs for all (the API answers in 0.5s)',
    $t->api_count('storm.cn'), $took;
$looks = calls('eval') - $looks;
$reads = calls('hgetall') - $reads;
ok $looks > 3, "the nodes that lost the race looked again ($looks looks in all)";
ok $looks <= 3 * 2 * 25, 'a few dozen at most';
diag "the storm cost Redis $looks look-or-lock scripts and $reads HGETALL";
my %hash = @{ [ split /\n/, $t->redis(qw(HGETALL icp:domain:storm.cn)) ] };
is $hash{status}, 'filed', 'the verdict is in Redis';

# a holder whose request fails leaves the failure in the lock's place for
# icp_gate_error_ttl: the fleet asks once, and no node asks, or waits for a
# lock, in turn (before P11: one request a node, one after the other)
$start = time;
my $flaky = $t->http_parallel(30, host => 'play.flaky.cn',
                              port => sub ($i) { $ports[$i % 3] });
my $flaky_took = time - $start;
is_deeply [grep { $_ != 403 } @$flaky], [],
    '30 clients over 3 nodes of a domain the API fails for: all refused';
is $t->api_count('flaky.cn'), 1,
    'one filing API request for the fleet, not one a node';
is scalar($t->redis(qw(GET icp:lock:flaky.cn))), 'failed',
    'the failure is remembered in Redis, in the lock\'s place';
my $pttl = $t->redis(qw(PTTL icp:lock:flaky.cn));
ok $pttl > 0 && $pttl <= 5000, "for icp_gate_error_ttl ($pttl ms left)";
diag sprintf 'a failing API (500 in 0.2 s), 30 clients over 3 nodes: %d '
    . 'request(s), all answered in %.2fs', $t->api_count('flaky.cn'),
    $flaky_took;

# a node that has not asked yet fails at once, without asking or waiting
$t->api_set('slowfail.cn', '500', delay_ms => 1500);
my $first = fork // die;
if ($first == 0) {
    $nodes[0]->get('play.slowfail.cn');
    POSIX::_exit(0);
}
waitpid $first, 0;
is $t->api_count('slowfail.cn'), 1, 'node 1 asked about slowfail.cn, and it failed';
$start = time;
my $r = $nodes[1]->get('play.slowfail.cn');
my $second = time - $start;
is $r->{headers}{'x-reason'}, 'lookup_failed', 'node 2 refuses it too';
ok $second < 0.75, sprintf 'at once (%.2fs; the API takes 1.5 s to fail)',
    $second;
is $t->api_count('slowfail.cn'), 1, 'without asking the API';

# past icp_gate_error_ttl (5 s), the fleet asks again, once
ok $t->wait_for(sub { !$t->redis(qw(EXISTS icp:lock:flaky.cn)) }, 7),
    'the failure is forgotten after icp_gate_error_ttl';
sleep 0.3;
$flaky = $t->http_parallel(9, host => 'www.flaky.cn',
                           port => sub ($i) { $ports[$i % 3] });
is $t->api_count('flaky.cn'), 2, 'then the fleet asks again, once';

# a holder that dies: the lock expires (it lives 2 x the Redis timeout = 2 s,
# renewed while its holder asks) and another node asks, within icp_gate_wait
my @waiting = map {
    my $port = $ports[$_];
    my $pid = fork // die;
    if ($pid == 0) {
        my $r = $t->http(host => 'play.dies.cn', port => $port, timeout => 20);
        POSIX::_exit($r->{status} == 200 ? 0 : 1);
    }
    $pid;
} 0 .. 2;
ok $t->wait_for(sub { $t->api_count('dies.cn') == 1 }, 3), 'one node asks about dies.cn';
$t->api_set('dies.cn', 'filed', delay_ms => 300);    # the next one is quick
my $holder = $t->redis(qw(GET icp:lock:dies.cn));
my ($pid) = $holder =~ /:(\d+):[0-9a-f]+$/;
ok $pid, "the lock names its holder ($holder)";
kill 'KILL', $pid if $pid;
$start = time;
ok $t->wait_for(sub { $t->api_count('dies.cn') == 2 }, 10),
    'after the holder died, another node asks';
$took = time - $start;
ok $took > 0.5 && $took < 3.5, sprintf 'when its lock expired (%.1fs after the kill)', $took;
diag sprintf 'the lock of a killed holder was taken over after %.1fs', $took;
my $served = 0;
for my $child (@waiting) {
    waitpid $child, 0;
    $served++ if $? == 0;
}
ok $served >= 2, "the clients of the other nodes got their verdict ($served of 3)";

# a holder gives its lock up while Redis stalls past its timeout: the
# give-up is late, and waits for no answer
my $kid = fork // die;
if ($kid == 0) {
    $t->http(host => 'play.late.cn', port => $ports[0], timeout => 10);
    POSIX::_exit(0);
}
ok $t->wait_for(sub { $t->api_count('late.cn') == 1 }, 3), 'a node asks about late.cn';
kill 'STOP', $t->redis_pid;
sleep 1.8;
kill 'CONT', $t->redis_pid;
waitpid $kid, 0;
is $nodes[0]->get('live.storm.cn')->{status}, 200, 'the node answers after the stall';

# a kill -9 is no crash of ours: leave those lines out of the check
for my $node (@nodes) {
    $node->stop_nginx;
    is_deeply [grep { !/exited on signal 9/ } $node->crashes], [],
        'no crash or sanitizer report on node ' . $node->port('http');
}
done_testing;
