# Redis as the fleet's shared source: operators' entries are obeyed without
# asking the filing API, their changes arrive within icp_gate_local_ttl, and
# a Redis that is absent, killed or restarted never takes the gate down.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1, api_default => 'filed', nginx => 0,
    conf => { main => 'icp_gate_local_ttl 1s; icp_gate_redis_prefix "gate:";' });

# operators' entries, written before nginx starts
$t->redis(qw(HSET gate:domain:manual.cn status filed source manual));
$t->redis(qw(HSET gate:domain:blocked.cn status revoked source manual));
$t->redis(qw(HSET gate:domain:abroad.cn status unfiled region overseas),
          qw(source manual));
$t->redis(qw(HSET gate:domain:typo.cn status fild source manual));
$t->redis('HSET', 'gate:domain:crlf.cn', 'status', 'filed',
          'icp', "X\r\nX-Injected: 1", 'source', 'manual');

$t->start_nginx;
my $r;

# new domains until one's verdict lands in Redis (the module reconnects with
# backoff, up to 5s)
sub written_to_redis($prefix) {
    return $t->wait_for(sub {
        $t->get($prefix . int(rand 1e6) . '.cn');
        scalar grep { /^gate:domain:$prefix\d+\.cn$/ } $t->redis('KEYS', 'gate:*');
    }, 10);
}

is $t->get('live.manual.cn')->{status}, 200, 'an operator-filed domain plays';
$r = $t->get('live.crlf.cn');
is $r->{status}, 200, 'a filing number with CR LF: the domain plays';
ok !exists $r->{headers}{'x-injected'}, 'and the number injects no header';
ok !$r->{headers}{'x-icp'}, 'it is not kept';
is $t->get('live.blocked.cn')->{headers}{'x-reason'}, 'revoked',
    'an operator-revoked domain is refused as revoked';
$r = $t->get('live.abroad.cn');
is $r->{status}, 200, 'an operator-marked overseas domain plays';
is $r->{headers}{'x-result'}, 'exempt', 'and is exempt';
is $r->{headers}{'x-reason'}, 'overseas', 'because it is overseas';
is $t->api_total, 0, 'operators\' entries are obeyed without any API request';

# an entry whose status is not one of the four counts as absent
is $t->get('live.typo.cn')->{status}, 200, 'an unreadable entry is asked about';
is $t->api_count('typo.cn'), 1, 'the API answered for the unreadable entry';

# an operator's change arrives within icp_gate_local_ttl (1s)
$t->redis(qw(HSET gate:domain:manual.cn status revoked));
my $start = time;
my $status = $t->wait_for(sub { $t->get('live.manual.cn')->{status} == 403 }, 5);
my $took = time - $start;
ok $status, 'a revocation written to Redis reaches the gate';
ok $took < 3, sprintf 'within icp_gate_local_ttl and a refresh (%.2fs)', $took;

$t->redis(qw(HSET gate:domain:blocked.cn status filed));
ok $t->wait_for(sub { $t->get('live.blocked.cn')->{status} == 200 }, 5),
    'a filing written to Redis reaches the gate';
is $t->api_count('manual.cn') + $t->api_count('blocked.cn'), 0,
    'refreshing operators\' entries asked the API nothing';

# Redis killed: known domains keep their verdicts, new ones go to the API
$t->stop_redis;
my @workers = $t->worker_pids;
sleep 1.2;    # past icp_gate_local_ttl: refreshes now find no Redis
is $t->get('live.manual.cn')->{status}, 403,
    'with Redis gone, a known domain keeps its verdict';
is $t->get('new1.cn')->{status}, 200,
    'with Redis gone, a new domain is judged by the filing API';
is $t->api_count('new1.cn'), 1, 'the API was asked about it';
is_deeply [$t->worker_pids], \@workers, 'no worker died';

# Redis back on the same port: the module reconnects and writes again
$t->start_redis;
ok written_to_redis('new'), 'after Redis restarts, verdicts are written to it again';

# Redis absent when nginx starts
$t->stop_nginx;
$t->stop_redis;
$t->start_nginx;
is $t->get('live.cold.cn')->{status}, 200,
    'Redis absent at start: the filing API still judges';
$t->start_redis;
ok written_to_redis('late'), 'Redis started later is found and used';
like $t->error_log, qr/icp_gate: redis 127\.0\.0\.1:\d+ connect failed/,
    'the failed connects are logged';

# a Redis that closes idle connections ("timeout"): reconnected at once,
# without an error and without the backoff growing, so Redis keeps serving
$t->redis(qw(CONFIG SET timeout 1));
ok $t->wait_for(sub {
    $t->error_log =~ /\[info\][^\n]*icp_gate: redis [^\n]* connection lost/
}, 5), 'an idle connection closed by Redis is logged as info';
unlike $t->error_log, qr/\[error\][^\n]*connection lost/,
    'not as an error';
sleep 2.5;    # two more idle closes: a growing backoff would show now
$t->redis(qw(HSET gate:domain:idle.cn status revoked source manual));
is $t->get('live.idle.cn')->{headers}{'x-reason'}, 'revoked',
    'after idle closes, Redis still answers lookups';
is $t->api_count('idle.cn'), 0, 'without the filing API';

$t->finish;
