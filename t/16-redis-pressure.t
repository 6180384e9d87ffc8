# A slow, stalled or absent Redis costs a lookup at most its timeout: a
# Redis command not answered within "timeout=" fails at its deadline and the
# lookup goes on to the filing API, within icp_gate_wait; the verdicts'
# writes never queue ahead of later reads; the timeouts are logged once per
# episode, not once per command.  A verdict that could not be written to
# Redis is kept in the zone for its whole icp_gate_ttl, and written to Redis
# once it is back.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Conf;

sub statuses($list) {
    my %n;
    $n{$_}++ for @$list;
    return join ', ', map { "$n{$_} × $_" } sort keys %n;
}

# $n cold domains at once; their statuses and the time the last one took
sub burst($t, $n, $tag) {
    my $start = time;
    my $got = $t->http_parallel($n, host => sub ($i) { "live.d$i-$tag.cn" },
                                path => '/index.html');
    return (statuses($got), time - $start);
}

my $t = IcpGate::Test->gated(redis => 1, api_default => 'filed');

# a Redis answering one command every 500 ms, through t/slow_redis.py
my $slow = $t->port('slow');
my $proxy = $t->_spawn($t->dir . '/slow.log',
    $ENV{ICP_GATE_PYTHON} // 'python3', $t->repo . '/t/slow_redis.py',
    '--port', $slow, '--upstream', $t->redis_port, '--delay-ms', 500);
$t->_await_service('slow redis', $proxy, $t->dir . '/slow.log', 5,
                   sub { IO::Socket::INET->new("127.0.0.1:$slow") });
END { kill 'KILL', $proxy if $proxy; }

$t->write_conf(gate_conf($t,
    redis => "icp_gate_redis 127.0.0.1:$slow;",
    main  => 'icp_gate_local_ttl 1s;'));
$t->start_nginx;
sleep 1.5;    # the connections' setup answered, one command at a time

my ($got, $took) = burst($t, 10, 'slow');
is $got, '10 × 200',
    sprintf 'a Redis answering every 500 ms: 10 cold filed domains play'
            . ' (the last in %.2fs)', $took;
# a read answered just before its deadline (1s) is followed by the fleet's
# look, with a deadline of its own: 2 s and a little at most; waiting in
# the queue, the fifth read of a worker would take 2.5 s
ok $took < 2.4, 'each Redis read gave up at its deadline (1s), not the queue';
is $t->api_total, 10, 'the filing API answered them';
ok $t->wait_for(sub {
    $t->error_log =~ /icp_gate: redis 127\.0\.0\.1:$slow: \d+ commands? timed out in the last 5s/
}, 3), 'the timeouts are logged';
my $lines = () = $t->error_log =~ /commands? timed out in the last/g;
ok $lines <= 4, "in one line per worker and episode ($lines lines)";

# the ten verdicts' writes are still crawling through their own connection:
# a later read is not queued behind them
sleep 2;
$t->redis(qw(HSET icp:domain:manual.cn status revoked source manual));
my $r = $t->get('live.manual.cn');
is $r->{headers}{'x-reason'}, 'revoked',
    sprintf 'an operator\'s entry is read from Redis meanwhile (%.2fs)',
            $r->{elapsed};
is $t->api_count('manual.cn'), 0, 'without asking the API';
ok $t->wait_for(sub { scalar grep { /-slow\.cn$/ } $t->redis('KEYS', '*') }, 5),
    'and the slow Redis takes the verdicts all the same';

# a Redis that stops answering altogether
$t->stop_nginx;
kill 'KILL', $proxy;
waitpid $proxy, 0;
undef $proxy;
$t->api_reset;
$t->write_conf(gate_conf($t, main => 'icp_gate_local_ttl 1s;'));
$t->start_nginx;
is $t->get('live.warm.cn')->{status}, 200, 'Redis answers';
kill 'STOP', $t->redis_pid;
($got, $took) = burst($t, 10, 'stop');
is $got, '10 × 200',
    sprintf 'a stopped Redis: 10 cold filed domains play (the last in %.2fs)',
            $took;
ok $took < 2, 'within the Redis timeout';
sleep 2.5;    # the writes that went out to it wait past twice the timeout
kill 'CONT', $t->redis_pid;
ok $t->wait_for(sub {
    10 == grep { $t->redis('HGET', "icp:domain:d$_-stop.cn", 'status') eq 'filed' }
              0 .. 9
}, 10), 'once Redis answers again, the verdicts are written to it';

# a stopped Redis and a stream of cold domains: 256 reads in flight at most,
# a read beyond them is not sent and the lookup asks the API at once
$t->stop_nginx;
$t->write_conf(gate_conf($t, workers => 1,
    redis  => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% timeout=10s;',
    http   => 'icp_gate_wait 10ms;',
    server => 'location /patient/ { icp_gate_wait 3s; }'));
$t->start_nginx;
is $t->get('live.warm.cn')->{status}, 200, 'Redis answers';
kill 'STOP', $t->redis_pid;
my $start = time;
$t->get("live.d$_-cap.cn") for 1 .. 256;
$r = $t->get('live.d257-cap.cn', '/patient/x');
my $filled = time - $start;
kill 'CONT', $t->redis_pid;
is $r->{status}, 404, sprintf 'with 256 reads unanswered (%.1fs), the next'
    . ' domain plays', $filled;
ok $r->{elapsed} < 1, sprintf 'at once, from the API (%.2fs)', $r->{elapsed};
is $t->api_count('d257-cap.cn'), 1, 'which was asked';
ok $t->wait_for(sub {
    # 1, and the reads of the node's invalidation channel once Redis is back
    $t->error_log =~ /, [1-9]\d* reads? not sent with 256 in flight/
}, 7), 'the read not sent is logged';

# a Redis that is gone: a verdict it could not take is kept locally for
# its icp_gate_ttl (1h here), not icp_gate_local_ttl (1s)
$t->stop_nginx;
$t->api_reset;
$t->write_conf(gate_conf($t,
    main => 'icp_gate_local_ttl 1s; icp_gate_ttl 1h;'));
$t->start_nginx;
is $t->get('live.warm.cn')->{status}, 200, 'Redis answers';
$t->stop_redis;
sleep 0.5;
my @down;
for my $i (1 .. 7) {
    push @down, $t->get("live$i.down.cn")->{status};
    sleep 1.5 if $i < 7;
}
is statuses(\@down), '7 × 200', 'with Redis down, a domain asked 7 times in 10s plays';
is $t->api_count('down.cn'), 1, 'after one API request';

# Redis back on its port: the verdict is written with what is left of its TTL
$t->start_redis;
ok $t->wait_for(sub {
    $t->redis('HGET', 'icp:domain:down.cn', 'status') eq 'filed'
}, 10), 'once Redis is back, the kept verdict is written to it';
my $ttl = $t->redis('TTL', 'icp:domain:down.cn');
ok $ttl > 3500 && $ttl <= 3600 - 9, "with the TTL it has left ($ttl s)";

$t->finish;
