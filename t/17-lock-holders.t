# The worker asking about a domain holds its update lock in the zone, and
# with Redis the fleet's lock too; the other workers, and nodes, wait for
# its verdict.  A holder that is killed, or that exits on a reload before
# its answer came, must not leave them waiting out the lock's deadline:
# its zone lock is taken over at once; its fleet lock is given up as it
# exits, or, killed, expires within icp_gate_wait (it lives twice the
# Redis timeout, renewed while the question is asked).

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t;

# a request whose client leaves at once: its worker goes on asking
sub leave_early($host) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $t->http(host => $host, path => '/index.html', timeout => 0.3);
        POSIX::_exit(0);
    }
    return $pid;
}

# a lock lasts 1 s + the API timeout: longer than icp_gate_wait (3 s)
for my $redis (0, 1) {
my $with = $redis ? 'with Redis' : 'without Redis';
$t = IcpGate::Test->gated(
    redis => $redis,
    api => {},
    conf => { workers => 2,
              redis => $redis ? 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% timeout=300ms;' : '',
              listen => 'reuseport',
              main => 'icp_gate_api_timeout 5s;' });

# kill -9 of the worker asking
$t->api_set('killed.cn', 'filed', delay_ms => 2000);
my $child = leave_early('live.killed.cn');
ok $t->wait_for(sub { $t->api_count('killed.cn') == 1 }, 3),
    'a worker asks the filing API about killed.cn';
my @old = $t->worker_pids;
kill 'KILL', @old;
ok $t->wait_for(sub {
    my @now = $t->worker_pids;
    @now == 2 && !grep { my $p = $_; grep { $_ == $p } @old } @now
}, 5), 'the master replaced the killed workers';
waitpid $child, 0;

$t->api_set('killed.cn', 'filed');
my $r = $t->get('live.killed.cn');
is $r->{status}, 200, "$with: the next request for the domain gets its verdict";
# without Redis at once; with it, once the fleet's lock expired (1 s after
# its last renewal)
ok $r->{elapsed} < ($redis ? 2 : 1),
    sprintf "$with: not at the lock deadline (%.2fs)", $r->{elapsed};
diag sprintf "$with: answer after kill -9 of the lock holder: %.3fs",
             $r->{elapsed};
is $t->api_count('killed.cn'), 2, 'from a second API request';

# a reload while the old workers ask about 20 cold domains nobody waits for
$t->api_reset;
$t->api_default('filed', delay_ms => 2000);
my @kids = map { leave_early("live.reload$_.cn") } 1 .. 20;
ok $t->wait_for(sub { $t->api_total == 20 }, 3),
    'the old workers ask about 20 cold domains';
waitpid $_, 0 for @kids;
ok $t->reload, 'reloaded';
is scalar(grep { /^icp:lock:/ } $t->redis('KEYS', '*')), 0,
    'the old workers gave their fleet locks up as they exited'
    if $redis;

# then a storm of cold domains: those 20 and 40 new ones
$t->api_default('filed', delay_ms => 200);
my $start = time;
my $statuses = $t->http_parallel(60, host => sub ($i) {
    $i < 20 ? 'live.reload' . ($i + 1) . '.cn' : "live.storm$i.cn"
});
my $took = time - $start;
my %by;
$by{$_}++ for @$statuses;
is $by{200}, 60, "$with: every request after the reload played"
    or diag explain \%by;
ok $took < 2, sprintf 'none waited for an old worker\'s lock (%.2fs)', $took;
diag sprintf '60 cold domains after a reload under a storm: %s in %.2fs',
             join(', ', map { "$by{$_} x $_" } sort keys %by), $took;
unlike $t->error_log, qr/no verdict within icp_gate_wait/,
    "$with: no request ran out of icp_gate_wait";

# a kill -9 is no crash of ours: leave those lines out of the check
$t->stop_nginx;
is_deeply [grep { !/exited on signal 9/ } $t->crashes], [],
    "$with: no crash or sanitizer report";
}

done_testing;
