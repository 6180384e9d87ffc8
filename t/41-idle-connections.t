# A node at rest holds no connection to Redis but its invalidation channel:
# each worker closes its read and write connections after "idle=" without
# a command, and opens them again for the next one, so that connections do
# not grow with nodes × workers.  Nothing is lost on the way: a read, a
# refresh and a write after the rest go through Redis as before, changes
# still arrive, and a cold storm opens no more than two a worker.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $workers = 4;

my $t = IcpGate::Test->gated(
    redis => 1, api => {}, api_default => 'filed',
    conf => { workers => $workers,
              redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% idle=1s;',
              main => 'icp_gate_local_ttl 1s;',
              servers => $IcpGate::Conf::METRICS_SERVER });

# the node's connections, not the one of this test's redis-cli
sub connections($t) {
    return scalar grep { /\S/ && !/cmd=client\|list/ } $t->redis(qw(CLIENT LIST));
}

sub scrape($t) { ($t->metrics)[0] }

# a cold storm: 80 domains at once over the workers
my $statuses = $t->http_parallel(80, host => sub ($i) { "live.storm$i.cn" },
                                 path => '/index.html');
is scalar(grep { $_ == 200 } @$statuses), 80, 'a cold storm of 80 domains is let in';
my $peak = connections($t);
cmp_ok $peak, '<=', 2 * $workers + 1,
    "under the storm no more than two connections a worker and the channel ($peak)";

ok $t->wait_for(sub { connections($t) == 1 }, 8),
    'at rest, past idle=1s, the node holds one connection: the channel'
    or diag join "\n", $t->redis(qw(CLIENT LIST));

my $m = scrape($t);
is $m->{icp_gate_redis_up}, 1, 'Redis still counts as up';
is $m->{icp_gate_redis_connections}, 1, 'one connection ready';
is $m->{icp_gate_redis_connections_idle}, 2 * $workers,
    'the others closed at rest, not lost';
is $m->{icp_gate_redis_reconnects_total}, 0, 'no reconnect counted';
like $t->error_log, qr/redis 127\.0\.0\.1:\d+ connection for reads closed after \d+ms without a command/,
    'the close is logged (info)';

# after the rest: a domain only Redis knows is read through a connection
# opened for it, not asked of the API
$t->redis(qw(HSET icp:domain:rested.cn status filed source manual icp R-1));
$t->api_reset;
my $r = $t->get('live.rested.cn');
is $r->{status}, 200, 'a domain in Redis is let in after the rest';
is $r->{headers}{'x-icp'}, 'R-1', 'with the verdict Redis holds';
is $t->api_count('rested.cn'), 0, 'not asked of the filing API';

# a copy past icp_gate_local_ttl is refreshed from Redis, not the API
ok $t->wait_for(sub { connections($t) == 1 }, 8), 'at rest again';
sleep 1.2;
$r = $t->get('live.storm1.cn');
is $r->{status}, 200, 'an expired copy answers after the rest';
$t->wait_for(sub { $t->get('www.storm1.cn')->{status} == 200 }, 2);
is $t->api_count('storm1.cn'), 0, 'its refresh read Redis, not the API';

# a write after the rest: a new domain's answer reaches Redis
ok $t->wait_for(sub { connections($t) == 1 }, 8), 'at rest again';
is $t->get('live.written.cn')->{status}, 200, 'a new domain after the rest';
ok $t->wait_for(sub { ($t->redis(qw(HGET icp:domain:written.cn status)))[0] eq 'filed' }, 3),
    'its verdict is written to Redis through the write connection opened again';

# a change still reaches the node at rest, through the channel
ok $t->wait_for(sub { connections($t) == 1 }, 8), 'at rest again';
is $t->get('live.storm2.cn')->{status}, 200, 'storm2.cn plays';
ok $t->wait_for(sub { connections($t) == 1 }, 8), 'at rest again';
$t->redis(qw(HSET icp:domain:storm2.cn status revoked source manual));
ok $t->wait_for(sub { $t->get('live.storm2.cn')->{status} == 403 }, 3),
    'a revocation written to Redis reaches the node at rest';

# Redis's own "timeout" closing connections: they open again when needed,
# without an error
$t->redis(qw(CONFIG SET timeout 1));
my $before = () = $t->error_log =~ /\[error\]/g;
ok $t->wait_for(sub { connections($t) <= 1 }, 8), 'Redis closed the idle ones';
$t->redis(qw(HSET icp:domain:late.cn status filed source manual));
is $t->get('live.late.cn')->{status}, 200, 'a read after Redis closed the connections';
my $after = () = $t->error_log =~ /\[error\]/g;
is $after, $before, 'and no error was logged';
$t->redis(qw(CONFIG SET timeout 0));

$t->stop_nginx;
$t->done_cleanly;

# idle=off: the connections stay, as before
my $kept = IcpGate::Test->gated(
    redis => 1, api => {},
    conf => { workers => 2,
              redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% idle=off;' });
$kept->wait_for(sub { connections($kept) == 5 }, 5);
sleep 2.5;
is connections($kept), 5, 'idle=off: two connections a worker and the channel stay';
$kept->finish;
