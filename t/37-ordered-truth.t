# One ordered truth: no stale answer of the filing API, no write waiting in
# the backlog, no lookup a purge overtook and no re-read that arrives late
# replaces a newer verdict, in Redis or in the zone; an operator's verdict
# outranks every answer of the API; the news reaches live sessions in every
# configuration, also on a domain the zone had let go.  Each window is
# opened on purpose: an API delay, a Redis behind a proxy that is stopped
# or that answers late.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Conf;
use IcpGate::Rtmp;

my $ffmpeg = system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

# a request in the background: its status and reason, in a file, later
sub get_later($t, $host) {
    my $file = $t->dir . '/later-' . int(rand 1e9);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $t->get($host);
        open my $fh, '>', $file or POSIX::_exit(1);
        print $fh "$r->{status} " . ($r->{headers}{'x-reason'} // '');
        close $fh;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file };
}

sub got_later($t, $later) {
    waitpid $later->{pid}, 0;
    return $t->read_file($later->{file}) // '';
}

sub purge($t, $domain, $redis) {
    my $r = $t->http(port => $t->port('ops'), host => 'ops', method => 'POST',
                     path => "/icp_gate/admin?domain=$domain&action=purge"
                             . ($redis ? '&redis=1' : ''),
                     headers => [['X-ICP-Gate', 'purge']]);
    $r->{json} = eval { decode_json($r->{body}) } // {};
    return $r;
}

sub zone_of($t, $domain, $port = $t->port('ops')) {
    my $r = $t->http(port => $port, host => 'ops',
                     path => "/icp_gate/admin?domain=$domain");
    return (eval { decode_json($r->{body}) } // {})->{zone};
}

sub reason($r) { "$r->{status} " . ($r->{headers}{'x-reason'} // '') }

my $ops = $IcpGate::Conf::ADMIN_SERVER;

# a Redis in front of the real one: stopped and started again, or late
sub proxy_start($t, %o) {
    my $port = $t->port('proxy');
    my $pid = $t->_spawn($t->dir . '/proxy.log',
        $ENV{ICP_GATE_PYTHON} // 'python3', $t->repo . '/t/slow_redis.py',
        '--port', $port, '--upstream', $t->redis_port, '--delay-ms', 0,
        '--reply-delay-ms', $o{reply_delay} // 0);
    $t->_await_service('redis proxy', $pid, $t->dir . '/proxy.log', 5,
                       sub { IO::Socket::INET->new("127.0.0.1:$port") });
    return $pid;
}

sub proxy_stop($pid) {
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

my $t = IcpGate::Test->gated(redis => 1, api_default => 'filed', conf => {
    servers => $ops,
    http    => 'icp_gate_wait 5s;' });

# -- an answer of the filing API asked before an operator's revocation

$t->api_set('slowco.cn', 'filed', delay_ms => 1500);
my $later = get_later($t, 'www.slowco.cn');
sleep 0.5;
$t->redis(qw(HSET icp:domain:slowco.cn status revoked source manual));
is got_later($t, $later), '200 ', 'the request in flight gets the answer it waited for';

sleep 0.3;
is_deeply [$t->redis(qw(HMGET icp:domain:slowco.cn status source))],
    ['revoked', 'manual'],
    "the API's answer, asked before, does not replace the operator's revocation";
ok $t->wait_for(sub { reason($t->get('www.slowco.cn')) eq '403 revoked' }, 2),
    'and the node refuses the domain';
is $t->api_count('slowco.cn'), 1, 'the API was asked once';

# -- a purge while a lookup is under way: the runbook's "filing came
#    through", on the node of the lookup and on another node

my $other = IcpGate::Test->new;
$other->{ports}{$_} = $t->port($_) for qw(redis api);
$other->write_conf(gate_conf($other, servers => $ops, http => 'icp_gate_wait 5s;'));
$other->start_nginx;

for my $case (['refiled.cn', $t, 'the same node'],
              ['refiled2.cn', $other, 'another node'])
{
    my ($domain, $purger, $where) = @$case;

    $t->api_set($domain, 'unfiled', delay_ms => 1500);
    $later = get_later($t, "www.$domain");
    sleep 0.4;
    $t->api_set($domain, 'filed');
    my $r = purge($purger, "www.$domain", 1);
    is $r->{status}, 200, "$where: a purge with redis=1 while the old answer is on its way";
    is reason($purger->get("www.$domain")), '200 ',
        "$where: the next request asks again: filed";
    is got_later($t, $later), '403 unfiled',
        "$where: the lookup the purge overtook answers its own waiters";
    sleep 0.5;
    is reason($t->get("www.$domain")), '200 ',
        "$where: its answer replaces nothing on its node";
    is $t->redis('HGET', "icp:domain:$domain", 'status'), 'filed',
        "$where: nor in Redis";
}

like $t->redis(qw(GET icp:purged:refiled.cn)), qr/^\d{16}$/,
    'the purge left its time in Redis';
cmp_ok $t->redis(qw(PTTL icp:purged:refiled.cn)), '>', 86_000_000,
    'for the longest a verdict lives (icp_gate_ttl)';
$other->stop_nginx;
$other->done_cleanly;

# -- a verdict stored by someone else than the worker refreshing it (a
#    re-read) leaves that worker's update lock in place

$t->api_set('held.cn', 'filed');
is reason($t->get('www.held.cn')), '200 ', 'held.cn is filed';
$t->api_set('held.cn', 'filed', delay_ms => 1500);
$t->redis(qw(DEL icp:domain:held.cn));
ok $t->wait_for(sub { (zone_of($t, 'held.cn') // {})->{fresh_for} // 1 <= 0 }, 2),
    'its hash deleted: the copy expires';
is reason($t->get('www.held.cn')), '200 ',
    'the next request gets the expired copy, and starts its refresh';
ok $t->wait_for(sub { $t->api_count('held.cn') == 2 }, 2),
    'which asks the filing API (slowly)';
$t->redis(qw(HSET icp:domain:held.cn status filed source manual));
ok $t->wait_for(sub { ((zone_of($t, 'held.cn') // {})->{source} // '') eq 'operator' }, 2),
    'an operator\'s verdict is read again into the zone meanwhile';
is zone_of($t, 'held.cn')->{refreshing}, JSON::PP::true,
    'and the refresh still holds its lock';
sleep 1.5;

# -- a purge whose DEL Redis does not answer in time purges nothing

$t->get('www.stuck.cn');
ok $t->wait_for(sub { ($t->redis(qw(HGET icp:domain:stuck.cn status)) // '') eq 'filed' }),
    'stuck.cn is filed, in the zone and in Redis';
my $redis_pid = $t->redis_pid;
kill 'STOP', $redis_pid;
my $r = purge($t, 'stuck.cn', 1);
kill 'CONT', $redis_pid;
is $r->{status}, 502, 'a purge Redis does not answer in time fails';
is_deeply [@{ $r->{json} }{qw(zone redis)}], ['kept', 'failed'],
    'and says the zone was not purged ahead of it';
is zone_of($t, 'stuck.cn')->{status}, 'filed', 'the copy is still there';
$t->stop_nginx;

# -- a verdict waiting in the backlog while Redis was away

my $proxy = proxy_start($t);
$t->write_conf(gate_conf($t, servers => $ops,
    redis => 'icp_gate_redis 127.0.0.1:%%PORT_proxy%%;'));
$t->start_nginx;
sleep 0.5;
proxy_stop($proxy);
sleep 0.3;
is reason($t->get('www.outage.cn')), '200 ', 'Redis away: the API answers, filed';
$t->redis(qw(HSET icp:domain:outage.cn status revoked source manual));
$proxy = proxy_start($t);
ok $t->wait_for(sub { reason($t->get('www.outage.cn')) eq '403 revoked' }, 8),
    'Redis back: the operator\'s revocation reaches the node';
sleep 1;
is_deeply [$t->redis(qw(HMGET icp:domain:outage.cn status source))],
    ['revoked', 'manual'],
    'and the verdict that waited in the backlog did not replace it';
$t->stop_nginx;
proxy_stop($proxy);

# -- two changes close together, Redis answering the re-reads late

$proxy = proxy_start($t, reply_delay => 150);
$t->write_conf(gate_conf($t, servers => $ops, workers => 1,
    redis => 'icp_gate_redis 127.0.0.1:%%PORT_proxy%% timeout=2s;'));
$t->start_nginx;
$t->redis(qw(HSET icp:domain:two.cn status filed icp A-1 source manual));
ok $t->wait_for(sub { reason($t->get('www.two.cn')) eq '200 ' }, 5),
    'two.cn is filed, and in the zone';
sleep 0.5;
$t->redis(qw(HSET icp:domain:two.cn icp A-2));
sleep 0.02;
$t->redis(qw(HSET icp:domain:two.cn status revoked));
ok $t->wait_for(sub { reason($t->get('www.two.cn')) eq '403 revoked' }, 2),
    'the re-read of the later change wins, though it came last';
$t->stop_nginx;
proxy_stop($proxy);
$t->done_cleanly;

# -- the news reaches live sessions without Redis, with tracking=off, and
#    on a domain the zone let go

SKIP: {
    skip 'ffmpeg is not installed', 9 unless $ffmpeg;

    my $rtmp = <<'EOF';
rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        icp_gate_log %%DIR%%/reject.log;
        application live { live on; }
    }
}
EOF

    my @cases = (['no Redis', ''],
                 ['tracking=off', 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% tracking=off;']);

    for my $case (@cases) {
        my ($name, $redis) = @$case;
        my $n = IcpGate::Test->gated(redis => $redis ne '', api => { 'live.cn' => 'filed' },
                                     conf => { redis => $redis, servers => $ops,
                                               main => $rtmp });
        my $pub = publish_start($n, tcurl($n, 'push.live.cn'), 'room');
        sleep 2;
        $n->api_set('live.cn', 'revoked');
        my $start = time;
        purge($n, 'live.cn', $redis ne '');
        ok $n->wait_for(sub { grep { ($_->{stage} // '') eq 'live' }
                              $n->log_lines('reject.log') }, 3),
            "$name: a purge to revoked drops the live publisher";
        my $took = time - $start;
        cmp_ok $took, '<', 2, "$name: within a second or so, not at icp_gate_recheck";
        diag sprintf "$name: purge to the live publisher dropped: %.2fs", $took;
        client_stop($n, $pub, 3);
        $n->stop_nginx;
        $n->done_cleanly;
    }

    # a zone of 128k, which 2 400 other domains fill: live.cn is let go
    my $n = IcpGate::Test->gated(redis => 1, api_default => 'filed',
                                 conf => { servers => $ops,
                                           main => "icp_gate_zone small:128k;\n$rtmp" });
    my $pub = publish_start($n, tcurl($n, 'push.live.cn'), 'room');
    ok $n->wait_for(sub { ($n->redis(qw(HGET icp:domain:live.cn status)) // '') eq 'filed' }, 5),
        'evicted: the publisher is on live.cn';
    # the fillers are in Redis already: their reads are no news, which
    # would have every live session checked again each second, and kept
    # live.cn in use
    $n->redis('EVAL', 'for r = 1, 60 do for i = 1, 40 do '
              . 'redis.call("HSET", "icp:domain:filler" .. r .. "-" .. i .. ".cn", '
              . '"status", "filed", "source", "manual") end end', 0);
    for my $round (1 .. 60) {
        $n->http_parallel(40, host => sub ($i) { "www.filler$round-" . ($i + 1) . '.cn' });
    }
    is zone_of($n, 'live.cn'), undef, 'evicted: the zone let live.cn go';
    my $start = time;
    $n->redis(qw(HSET icp:domain:live.cn status revoked source manual));
    ok $n->wait_for(sub { grep { ($_->{stage} // '') eq 'live' }
                          $n->log_lines('reject.log') }, 3),
        'evicted: a revocation in Redis drops the live publisher all the same';
    my $took = time - $start;
    cmp_ok $took, '<', 2, 'evicted: within a second or so';
    diag sprintf 'evicted: revocation in Redis to the live publisher dropped: %.2fs', $took;
    client_stop($n, $pub, 3);
    $n->stop_nginx;
    $n->done_cleanly;
}

done_testing;
