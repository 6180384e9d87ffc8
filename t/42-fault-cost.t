# A fault costs the filing API nothing it need not: while Redis stalls, a
# domain the zone knows answers with its copy as long as its verdict lives
# (stale-if-error), rather than its refresh asking the API; past its own
# TTL it is asked again.  (The fleet's side, a failure of the API
# remembered in Redis for every node, is t/25's.)

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $n = 100;

my $t = IcpGate::Test->gated(
    redis => 1, api => {}, api_default => 'filed',
    conf => { main => 'icp_gate_local_ttl 1s; icp_gate_ttl 8s;'
                    . ' icp_gate_negative_ttl 8s;',
              redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% timeout=300ms;' });

my $warmed = time;
my @hosts = map { "live.known$_.cn" } 1 .. $n;
is scalar(grep { $t->get($_)->{status} == 200 } @hosts), $n,
    "$n domains let in, asked of the API";
is $t->api_total, $n, "one API request each";
$t->api_reset;

# their copies past icp_gate_local_ttl, Redis stopped for 3 s: every copy
# is refreshed, and every refresh's read fails
sleep 1.2;
kill 'STOP', $t->redis_pid;
my $start = time;
my ($ok, $asked) = (0, 0);
while (time - $start < 3) {
    $ok += scalar grep { $t->get($_)->{status} == 200 } @hosts[0 .. 24];
    $asked++;
}
$ok += scalar grep { $t->get($_)->{status} == 200 } @hosts;
kill 'CONT', $t->redis_pid;
is $ok, 25 * $asked + $n, 'every request answered 200 while Redis was stopped';
is $t->api_total, 0,
    'and no known domain was sent to the filing API (its copy answered on)';
like $t->error_log, qr/redis .* (?:timed out|late|did not answer)/i,
    'the stall was noticed';

# past the verdicts' own TTL (8 s), a copy is no longer a verdict: with
# Redis stopped the API is asked
my $wait = 8.5 - (time - $warmed);
sleep $wait if $wait > 0;
kill 'STOP', $t->redis_pid;
$t->get($_) for @hosts[0 .. 4];
ok $t->wait_for(sub { $t->api_total >= 5 }, 5),
    'past its TTL a known domain is asked of the API when Redis fails ('
    . $t->api_total . ' requests for 5)';
kill 'CONT', $t->redis_pid;

# an operator's verdict (no checked_at, no TTL of the API's) stands while
# Redis fails: the API is not asked to overrule it
$t->redis(qw(HSET icp:domain:banned.cn status revoked source manual));
is $t->get('live.banned.cn')->{headers}{'x-reason'},
    'revoked', "an operator's revocation refuses";
$t->api_reset;
sleep 1.2;
kill 'STOP', $t->redis_pid;
my @banned = map { $t->get('live.banned.cn')->{status} } 1 .. 5;
kill 'CONT', $t->redis_pid;
is_deeply \@banned, [(403) x 5], 'and still refuses while Redis is stopped';
is $t->api_count('banned.cn'), 0, 'the API was not asked to overrule it';

# only the API's own failures are shared with the fleet (t/25): an answer
# with a status is, a refusal of this node's credentials is not
$t->api_set('broken.cn', '500');
$t->api_set('denied.cn', 'raw', code => 401, body => '');
is $t->get('live.broken.cn')->{headers}{'x-reason'}, 'lookup_failed', 'the API answering 500';
is scalar($t->redis(qw(GET icp:lock:broken.cn))), 'failed', 'is remembered for the fleet';
is $t->get('live.denied.cn')->{headers}{'x-reason'}, 'lookup_failed', 'the API answering 401';
is $t->redis(qw(EXISTS icp:lock:denied.cn)), 0, 'is this node\'s failure alone';

$t->stop_nginx;
$t->done_cleanly;

# a node that cannot reach the API leaves no mark either
my $cut = IcpGate::Test->gated(
    redis => 1,
    conf => { api => 'icp_gate_api "http://127.0.0.1:9/v1/{domain}";' });
is $cut->get('live.cut.cn')->{headers}{'x-reason'}, 'lookup_failed',
    'an API this node cannot connect to';
is $cut->redis(qw(EXISTS icp:lock:cut.cn)), 0, 'leaves the fleet free to ask';
$cut->finish;
