# A reload costs Redis nothing.  The zone, kept across reloads, keeps its
# copies: the new configuration's worker 0 sets up its invalidation
# channel while the old one still listens, and the old one stays until
# it has heard a beat of its own after that, so that no moment goes
# without a channel and no copy needs to expire.  20 reloads of a node
# holding 400 domains make (almost) no Redis read.  A change written
# during a reload still reaches the node; and where there was a moment
# without a channel (the listening worker killed while the master could
# not start another, or the old worker stopped and killed before it
# handed over), every copy still counts as stale.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Conf;

my $DOMAINS = 400;
my $RELOADS = 20;

my $t = IcpGate::Test->gated(redis => 1, api_default => 'filed', conf => {
    main => 'icp_gate_local_ttl 1h;' });

sub hgetalls() {
    my ($line) = grep { /^cmdstat_hgetall:/ } $t->redis(qw(INFO commandstats));
    return ($line // '') =~ /calls=(\d+)/ ? $1 : 0;
}

sub channels_set_up() {
    return scalar(() = $t->error_log =~ /tells this node of every change/g);
}

# the worker that listens: the last to set the channel up
sub listener() {
    my @pids = $t->error_log =~ /\[info\] (\d+)#\d+: [^\n]*connected for invalidations/g;
    return $pids[-1];
}

sub reason($host) {
    my $r = $t->get($host);
    return "$r->{status} " . ($r->{headers}{'x-reason'} // '');
}

# the domain refused as revoked within $within s; how long it took, said
sub refused_within($domain, $within, $name, $since) {
    my $start = time;
    ok $t->wait_for(sub { reason("www.$domain") eq '403 revoked' }, $within),
        $name;
    diag sprintf "$domain refused %.2f s after $since", time - $start;
}

sub all_answer($round) {
    my @wrong = grep { $t->get("www.d$_.cn")->{status} != 200 } 1 .. $DOMAINS;
    is scalar @wrong, 0, "$round: every domain still plays"
        or diag "refused: @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]";
}

# an operator's verdicts, with no expiry: Redis has them all, the API none
$t->redis('EVAL', "for i = 1, $DOMAINS do redis.call('HSET', "
          . "'icp:domain:d' .. i .. '.cn', 'status', 'filed', 'source', "
          . "'manual') end", 0);

ok $t->wait_for(sub { channels_set_up() == 1 }, 5), 'the channel is set up';
all_answer('warmed');
is $t->api_total, 0, 'from Redis alone';

# each reload followed by a request of every domain
my $before = hgetalls();
my $seen = 1;
my $started = time;
for my $n (1 .. $RELOADS) {
    ok $t->reload, "reload $n: the new workers replaced the old" or last;
    $seen++;
    ok $t->wait_for(sub { channels_set_up() >= $seen }, 5),
        "reload $n: the new channel is set up";
    all_answer("after reload $n");
}
my $reads = hgetalls() - $before;
diag sprintf "$RELOADS reloads of a node holding $DOMAINS domains, each "
    . "followed by a request of every domain: $reads Redis reads (HGETALL), "
    . "%.1f s", time - $started;
cmp_ok $reads, '<=', 20, "$RELOADS reloads cost at most 20 Redis reads";
my $handed = () = $t->error_log =~ /invalidation channel of an exiting worker closed: the new configuration's listens/g;
is $handed, $RELOADS, 'each old listener stayed until the new one took over';
unlike $t->error_log, qr/invalidation channel lost/, 'no channel was lost';

# -- changes written while the node reloads: right after the signal, and
#    once the new workers are up, while the old channel may still listen

for my $n (1 .. 4) {
    my @old = $t->worker_pids;
    my %old = map { $_ => 1 } @old;
    is reason("www.early$n.cn"), '200 ', "round $n: early$n.cn plays";
    is reason("www.late$n.cn"), '200 ', "round $n: late$n.cn plays";

    my ($code, $out) = $t->_nginx('-s', 'reload');
    is $code, 0, "round $n: reload signalled" or diag $out;
    sleep 0.05 * ($n - 1);
    $t->redis('HSET', "icp:domain:early$n.cn", 'status', 'revoked');
    $t->wait_for(sub { grep { !$old{$_} } $t->worker_pids }, 5);
    $t->redis('HSET', "icp:domain:late$n.cn", 'status', 'revoked');
    ok $t->wait_for(sub { !grep { $t->alive($_) } @old }, 10),
        "round $n: the old workers left";
    refused_within("early$n.cn", 2, "round $n: a revocation written right "
                   . 'after the signal reached the node', 'the old workers left');
    refused_within("late$n.cn", 2, "round $n: and one written as the new "
                   . 'workers came up', 'that');
}

# -- no channel for a while: the listening worker killed while the master
#    is stopped, so that nobody listens when the change is written

{
    is reason('www.gap.cn'), '200 ', 'gap.cn plays';
    my $pid = listener();
    ok $pid && $t->alive($pid), "the listening worker is $pid";
    my $master = $t->nginx_pid;
    kill 'STOP', $master;
    kill 'KILL', $pid;
    $t->wait_for(sub { !$t->alive($pid) }, 5);
    $t->redis(qw(HSET icp:domain:gap.cn status revoked));
    sleep 0.3;
    kill 'CONT', $master;
    refused_within('gap.cn', 2, 'a change written while no worker listened '
                   . 'reaches the node', 'the master could start worker 0 again');
}

# -- the old listener stopped before the change and the reload, and killed
#    once the new channel is set up: it never heard the change, nor handed
#    over, so every copy counts as stale

{
    is reason('www.unheard.cn'), '200 ', 'unheard.cn plays';
    $seen = channels_set_up();
    my $pid = listener();
    ok $pid && $t->alive($pid), "the listening worker is $pid";
    kill 'STOP', $pid;
    $t->redis(qw(HSET icp:domain:unheard.cn status revoked));
    my ($code, $out) = $t->_nginx('-s', 'reload');
    is $code, 0, 'reload signalled' or diag $out;
    ok $t->wait_for(sub { channels_set_up() > $seen }, 5),
        'the new channel is set up while the old listener is stopped';
    sleep 0.5;
    kill 'KILL', $pid;
    refused_within('unheard.cn', 3, 'a change only the killed listener was '
                   . 'told of reaches the node', 'the old listener was killed');
}

# -- a stop is not held: no configuration comes after it

{
    my $pid = listener();
    my $start = time;
    $t->stop_nginx;
    ok !$t->alive($pid), sprintf 'a stop: the listener left at once (%.2f s)',
                                 time - $start;
    unlike $t->error_log, qr/did not take over/,
        'no handover was waited for so far';
}

# -- a reload that turns the channel off: the old listener waits for none
#    longer than twice the Redis timeout and a second, then goes

{
    $t->write_conf(gate_conf($t, main => 'icp_gate_local_ttl 1h;',
        redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;'));
    $t->start_nginx;
    ok $t->wait_for(sub { listener() && $t->alive(listener()) }, 5),
        'started again, with a channel';
    my @old = $t->worker_pids;
    $t->write_conf(gate_conf($t, main => 'icp_gate_local_ttl 1h;',
        redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% tracking=off;'));
    my $start = time;
    my ($code, $out) = $t->_nginx('-s', 'reload');
    is $code, 0, 'reloaded with tracking=off' or diag $out;
    ok $t->wait_for(sub { !grep { $t->alive($_) } @old }, 10),
        'the old workers left';
    my $took = time - $start;
    cmp_ok $took, '>', 2, sprintf 'the old listener waited for a new channel '
        . '(%.2f s)', $took;
    like $t->error_log, qr/invalidation channel of an exiting worker closed: the new configuration's did not take over within 3000ms/,
        'and said it gave up';
    is reason('www.d1.cn'), '200 ', 'd1.cn still plays';
}

$t->stop_nginx;
is_deeply [grep { !/exited on signal 9/ } $t->crashes], [],
    'no crash or sanitizer report but the workers killed';
done_testing;
