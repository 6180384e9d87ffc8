# icp_gate_metrics: the node's figures, summed over its workers, move as
# requests are judged, as the tiers answer or fail, and as Redis goes and
# comes back; the same figures in JSON; totals survive a reload.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed', 'unfiled.cn' => 'unfiled',
             'broken.cn' => '500', 'garbled.cn' => 'garbage' },
    conf => { main => 'icp_gate_redis_prefix "m:";',
              servers => $IcpGate::Conf::METRICS_SERVER });

sub scrape($t) { $t->metrics }

sub decisions($m, $result, $reason) {
    return $m->{qq{icp_gate_decisions_total{proto="http",result="$result",reason="$reason"}}} // 0;
}

sub lookups($m, $tier, $outcome) {
    return $m->{qq{icp_gate_lookups_total{tier="$tier",outcome="$outcome"}}};
}

# start_nginx waits for the workers, not for their Redis connections
$t->wait_for(sub { (scrape($t))[0]{icp_gate_redis_connections} == 5 });

my ($m, $r) = scrape($t);
is $r->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
    'Prometheus text format 0.0.4';
like $r->{body}, qr/^# TYPE icp_gate_decisions_total counter$/m,
    'every family has its TYPE line';
like $r->{body}, qr/^# HELP icp_gate_api_request_duration_seconds /m,
    'and its HELP line';
is $m->{icp_gate_workers}, 2, 'both workers count';
is lookups($m, 'zone', 'hit'), 0, 'nothing looked up yet';
is $m->{icp_gate_redis_up}, 1, 'Redis is up';
is $m->{icp_gate_redis_connections}, 5,
    'two connections a worker, and the invalidation channel';
is $m->{icp_gate_zone_entries}, 0, 'the zone is empty';
cmp_ok $m->{icp_gate_zone_size_bytes}, '>=', 10 * 1024 * 1024,
    'the zone is the default 10m';

# a cold domain, then a cache hit, then a refusal
is $t->get('live.filed.cn')->{status}, 200, 'a filed domain plays';
is $t->get('play.filed.cn')->{status}, 200, 'and again, from the zone';
is $t->get('push.unfiled.cn')->{status}, 403, 'an unfiled one is refused';

($m) = scrape($t);
is decisions($m, 'allow', 'none'), 2, 'two requests allowed';
is decisions($m, 'deny', 'unfiled'), 1, 'one refused as unfiled';
is lookups($m, 'zone', 'miss'), 2, 'two domains missed the zone';
is lookups($m, 'zone', 'hit'), 1, 'one answered from it';
is lookups($m, 'redis', 'miss'), 2, 'both missed Redis';
is lookups($m, 'api', 'hit'), 2, 'the filing API answered both';
is $m->{'icp_gate_api_request_duration_seconds_count'}, 2,
    'two filing API requests timed';
is $m->{'icp_gate_api_request_duration_seconds_bucket{le="+Inf"}'}, 2,
    'the +Inf bucket holds them all';
cmp_ok $m->{'icp_gate_api_request_duration_seconds_sum'}, '>', 0,
    'their time adds up';
cmp_ok $m->{'icp_gate_redis_command_duration_seconds_count'}, '>=', 4,
    'Redis commands timed (reads, looks, writes)';
my @le = map { /le="([^"]+)"/ ? $1 : () } grep { /^icp_gate_redis_command_duration_seconds_bucket/ } keys %$m;
is_deeply [sort { ($a eq '+Inf' ? 1e9 : $a) <=> ($b eq '+Inf' ? 1e9 : $b) } @le],
    [qw(0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 1 +Inf)],
    'the Redis histogram\'s bounds, in seconds';
@le = map { /le="([^"]+)"/ ? $1 : () } grep { /^icp_gate_api_request_duration_seconds_bucket/ } keys %$m;
is_deeply [sort { ($a eq '+Inf' ? 1e9 : $a) <=> ($b eq '+Inf' ? 1e9 : $b) } @le],
    [qw(0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 +Inf)],
    'the filing API histogram\'s bounds';
my $cum = 0;
my $monotonic = 1;
for my $le (qw(0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 +Inf)) {
    my $v = $m->{qq{icp_gate_api_request_duration_seconds_bucket{le="$le"}}};
    $monotonic = 0 if $v < $cum;
    $cum = $v;
}
ok $monotonic, 'its buckets are cumulative';
is $m->{icp_gate_zone_entries}, 2, 'the zone holds two domains';
cmp_ok $m->{icp_gate_zone_used_bytes}, '>', 0, 'and uses some of its pages';
is $m->{icp_gate_lookups_in_flight}, 0, 'no lookup in flight';
is $m->{icp_gate_api_requests_queued}, 0, 'none queued';

# filing API failures, by kind
is $t->get('x.broken.cn')->{status}, 403, 'an API answering 500 refuses';
is $t->get('x.garbled.cn')->{status}, 403, 'an API answering garbage refuses';
($m) = scrape($t);
is decisions($m, 'deny', 'lookup_failed'), 2, 'two failed lookups refused';
is $m->{'icp_gate_api_failures_total{kind="status"}'}, 1, 'a 500 is a status failure';
is $m->{'icp_gate_api_failures_total{kind="body"}'}, 1, 'garbage is a body failure';
is lookups($m, 'api', 'error'), 2, 'two API lookups without a verdict';

# Redis goes away and comes back
my $reconnects = $m->{icp_gate_redis_reconnects_total};
$t->stop_redis;
ok $t->wait_for(sub { (scrape($t))[0]{icp_gate_redis_up} == 0 }, 5),
    'Redis down: icp_gate_redis_up is 0';
($m) = scrape($t);
cmp_ok $m->{icp_gate_redis_reconnects_total}, '>', $reconnects,
    'the lost connections are counted';
is $m->{icp_gate_redis_connections}, 0, 'no connection is ready';
is $t->get('new.filed.cn')->{status}, 200,
    'a new domain is still served, through the API';
($m) = scrape($t);
cmp_ok lookups($m, 'redis', 'error'), '>=', 1, 'its Redis read failed';
$t->start_redis;

# the connections Redis closed with nothing pending open when next needed
# (t/41); the channel opens at once
ok $t->wait_for(sub { my ($s) = scrape($t);
                      $s->{icp_gate_redis_up} == 1
                      && $s->{icp_gate_redis_connections} >= 1
                      && $s->{icp_gate_redis_connections_failing} == 0 }, 10),
    'Redis back: up again, the invalidation channel ready, none failing';
my $misses = lookups((scrape($t))[0], 'redis', 'miss');
is $t->get('live.back-again.cn')->{status}, 403,
    'a new domain after Redis is back is judged';
is lookups((scrape($t))[0], 'redis', 'miss'), $misses + 1,
    'read in Redis again';

# the same figures in JSON
$r = $t->http(port => $t->port('ops'), host => 'ops',
              path => '/metrics?format=json');
is $r->{status}, 200, 'JSON on ?format=json';
is $r->{headers}{'content-type'}, 'application/json', 'as application/json';
my $j = eval { decode_json($r->{body}) };
ok $j, 'the JSON parses' or diag $r->{body};
my ($deny) = grep { $_->{result} eq 'deny' && $_->{reason} eq 'unfiled' }
                  @{ $j->{icp_gate_decisions_total} };
is $deny->{value}, 2, 'decisions carry their labels (unfiled.cn, back-again.cn)';
is $j->{icp_gate_redis_up}, 1, 'a value without labels is a number';
# the copies expired when Redis (and its channel) went: filed.cn was asked
# of the API again
is $j->{icp_gate_api_request_duration_seconds}{count}, $t->api_total,
    'a histogram is buckets, sum and count: one a filing API request';
is $j->{icp_gate_api_request_duration_seconds}{buckets}{'+Inf'},
    $t->api_total, 'its +Inf bucket';

# the Grafana dashboard of conf/ asks for no metric that is not here
my $dashboard = decode_json($t->read_file($t->repo . '/conf/icp-gate-grafana.json'));
my %exposed = map { /^(\w+)/ ? ($1 => 1) : () } keys %$m;
my %asked = map { s/_(?:bucket|sum|count)$//r => 1 }
            map { /\b(icp_gate_\w+)/g } map { $_->{expr} }
            map { @{ $_->{targets} } } @{ $dashboard->{panels} };
$exposed{$_ =~ s/_(?:bucket|sum|count)$//r} = 1 for keys %exposed;
is_deeply [grep { !$exposed{$_} } sort keys %asked], [],
    'every metric the Grafana dashboard uses is exposed';
cmp_ok scalar(keys %asked), '>=', 15, 'and it uses most of them';

# a reload keeps the totals: they are counts since nginx started
($m) = scrape($t);
my $allowed = decisions($m, 'allow', 'none');
$reconnects = $m->{icp_gate_redis_reconnects_total};
$t->reload;
ok $t->wait_for(sub { (scrape($t))[0]{icp_gate_workers} == 2 }, 10),
    'after a reload, two workers count';
($m) = scrape($t);
is $m->{icp_gate_redis_reconnects_total}, $reconnects,
    'the old workers\' connections, closed as they exit, are no reconnects';
is decisions($m, 'allow', 'none'), $allowed,
    'the old workers\' counts are kept';
is $m->{icp_gate_zone_entries}, 5,
    'and the zone its domains (three verdicts, two failures remembered)';

# a worker killed outright: its counts stay, its slot is taken again
my ($victim) = $t->worker_pids;
kill 'KILL', $victim;
ok $t->wait_for(sub { my @p = $t->worker_pids; @p == 2 && !grep { $_ == $victim } @p }, 10),
    'a killed worker is replaced';
ok $t->wait_for(sub { (scrape($t))[0]{icp_gate_workers} == 2 }, 10),
    'and its replacement counts in its place';
($m) = scrape($t);
is decisions($m, 'allow', 'none'), $allowed,
    'what the killed worker counted is not lost';

$t->stop_nginx;
is_deeply [grep { !/exited on signal 9/ } $t->crashes], [],
    'no crash but the kill, no sanitizer report';
done_testing;
