# icp_gate_admin: what a node holds of a domain in each tier and what the
# filing API says now; a purge that lets a newly filed domain in at once
# and drops a live session whose domain lost its filing; every action in
# the error log; a client nginx's own access rules deny gets 403; a purge
# without the X-ICP-Gate: purge header (what a form on another site would
# send) purges nothing.

use v5.36;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Rtmp;
use POSIX ();

my $ffmpeg = system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed', 'unfiled.cn' => 'unfiled',
             'xn--fsqu00a.xn--fiqs8s' => 'filed', 'live.cn' => 'filed' },
    conf => <<'EOF');
icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;
icp_gate_api "%%API_URL%%";

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        icp_gate_log %%DIR%%/reject.log;
        application live { live on; }
    }
}

http {
    access_log off;

    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        icp_gate on;
        root %%DIR%%/html;
        location / { }
    }

    server {
        listen 127.0.0.1:%%PORT_ops%%;

        location = /icp_gate/admin {
            icp_gate_admin;
            allow 127.0.0.1;
            deny all;
        }

        location = /icp_gate/closed {
            icp_gate_admin;
            deny all;
        }

        location = /metrics { icp_gate_metrics; }
    }
}
EOF
IcpGate::Conf::setup_html($t);

# a POST carries the purge's header unless headers => [...] says otherwise
sub admin($t, $method, $query, $path = '/icp_gate/admin', %args) {
    my $headers = $args{headers}
        // ($method eq 'POST' ? [['X-ICP-Gate', 'purge']] : []);
    my $r = $t->http(port => $t->port('ops'), host => 'ops',
                     method => $method, path => "$path?$query",
                     headers => $headers,
                     $method eq 'POST' ? (body => '') : ());
    $r->{json} = eval { decode_json($r->{body}) } if $r->{status} == 200
        || $r->{body} =~ /^\{/;
    return $r;
}

sub metric($t, $name) {
    my $r = $t->http(port => $t->port('ops'), host => 'ops', path => '/metrics');
    return $r->{body} =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

# a domain nobody asked about yet
my $r = admin($t, 'GET', 'domain=live.filed.cn');
is $r->{status}, 200, 'a lookup answers 200';
is $r->{headers}{'content-type'}, 'application/json', 'in JSON';
is $r->{headers}{'cache-control'}, 'no-store', 'never to be cached';
is $r->{json}{host}, 'live.filed.cn', 'the host as asked';
is $r->{json}{domain}, 'filed.cn', 'its registrable domain';
is $r->{json}{zone}, undef, 'not in the zone';
is $r->{json}{redis}, undef, 'not in Redis';
ok !exists $r->{json}{api}, 'the filing API is not asked unless probed';
is $t->api_count('filed.cn'), 0, 'and was not asked';

# once a request has looked it up
is $t->get('live.filed.cn')->{status}, 200, 'a request plays';
$r = admin($t, 'GET', 'domain=live.filed.cn');
is $r->{json}{zone}{status}, 'filed', 'the zone has the verdict';
is $r->{json}{zone}{icp}, '京ICP备12345678号-1', 'with its filing number';
is $r->{json}{zone}{source}, 'api', 'from the filing API';
cmp_ok $r->{json}{zone}{age}, '<=', 2, 'checked a moment ago';
cmp_ok $r->{json}{zone}{fresh_for}, '>', 50, 'fresh for icp_gate_local_ttl';
cmp_ok $r->{json}{zone}{usable_for}, '>', 86000, 'usable for icp_gate_ttl';
is $r->{json}{zone}{refreshing}, JSON::PP::false, 'no refresh under way';
is $r->{json}{redis}{status}, 'filed', 'Redis has it too';
is $r->{json}{redis}{source}, 'api', 'as written by the module';

# what the API says now
$r = admin($t, 'GET', 'domain=filed.cn&probe=api');
is $r->{json}{api}{status}, 'filed', 'probe=api asks the filing API';
is $t->api_count('filed.cn'), 2, 'which was asked once more';

# an operator's hash
$t->redis(qw(HSET icp:domain:operator.cn status filed source manual icp X-1));
$r = admin($t, 'GET', 'domain=operator.cn');
is $r->{json}{redis}{source}, 'operator', "an operator's hash says so";
is $r->{json}{redis}{icp}, 'X-1', 'with its number';

# hosts: IDN, and what is no host at all
$r = admin($t, 'GET', 'domain=%E7%9B%B4%E6%92%AD.%E4%BE%8B%E5%AD%90.%E4%B8%AD%E5%9B%BD');
is $r->{json}{domain}, 'xn--fsqu00a.xn--fiqs8s', 'a UTF-8 host, percent-encoded, is reduced as the gate does';
$r = admin($t, 'GET', 'domain=127.0.0.1');
is $r->{status}, 400, 'an IP literal is a bad request';
like $r->{body}, qr/not a host that can be filed/, 'saying why';
is admin($t, 'GET', 'nodomain=1')->{status}, 400, 'no domain= is a bad request';
is admin($t, 'POST', 'domain=10.0.0.1&action=purge')->{status}, 400,
    'an IP literal is not purged';
like $t->error_log, qr/icp_gate: admin purge refused: "10\.0\.0\.1" is not a host/,
    'and the refusal is logged as such';
admin($t, 'GET', 'domain=x.cn%0a2026/12/01%2000:00:00%20[emerg]%20forged');
unlike $t->error_log, qr/^2026\/12\/01 00:00:00 \[emerg\] forged/m,
    'a host with a newline cannot forge an error log line';
is admin($t, 'GET', 'domain=' . ('a' x 2000))->{status}, 400,
    'nor is a domain of 2000 bytes';

# a purge must be a POST with action=purge
is admin($t, 'GET', 'domain=filed.cn&action=purge')->{status}, 405,
    'a purge by GET is refused';
is admin($t, 'POST', 'domain=filed.cn')->{status}, 400,
    'a POST without action=purge is refused';
is admin($t, 'POST', 'domain=filed.cn&action=drop')->{status}, 400,
    'an unknown action is refused';

# a domain's filing came through: it is let in the moment it is purged
is $t->get('www.unfiled.cn')->{status}, 403, 'unfiled.cn is refused';
$t->api_set('unfiled.cn', 'filed');
is $t->get('www.unfiled.cn')->{status}, 403,
    'and still is once the API knows better: the verdict is kept 30 minutes';

# a purge a page on another site could make an operator's browser send:
# a form POST, which can carry no header of its own
my $asked_before = $t->api_count('unfiled.cn');
$r = admin($t, 'POST', 'domain=www.unfiled.cn&action=purge&redis=1',
           '/icp_gate/admin',
           headers => [['Content-Type', 'application/x-www-form-urlencoded'],
                       ['Origin', 'http://evil.example']]);
is $r->{status}, 403, 'a purge without the X-ICP-Gate header is refused';
is $r->{headers}{'content-type'}, 'application/json', 'in JSON';
is $r->{json}{error}, 'a purge needs the header X-ICP-Gate: purge',
    'naming the header';
is admin($t, 'POST', 'domain=www.unfiled.cn&action=purge&redis=1',
         '/icp_gate/admin', headers => [['X-ICP-Gate', 'yes']])->{status},
    403, 'and with another value';
like $t->error_log, qr/\[notice\].*icp_gate: admin purge refused: no "X-ICP-Gate: purge" header.*client: 127\.0\.0\.1.*action=purge&redis=1/,
    'the refusal is logged at notice, with the client and the request';
is $t->redis(qw(HGET icp:domain:unfiled.cn status)), 'unfiled',
    'the Redis hash is still there';
$r = admin($t, 'GET', 'domain=unfiled.cn');
is $r->{json}{zone}{status}, 'unfiled', 'so is the zone copy';
cmp_ok $r->{json}{zone}{fresh_for}, '>', 0, 'still fresh';
is $t->get('www.unfiled.cn')->{status}, 403, 'which still answers';
is $t->api_count('unfiled.cn'), $asked_before, 'the filing API was not asked';
$r = $t->http(port => $t->port('ops'), host => 'ops', method => 'OPTIONS',
              path => '/icp_gate/admin?domain=unfiled.cn&action=purge',
              headers => [['Origin', 'http://evil.example'],
                          ['Access-Control-Request-Method', 'POST'],
                          ['Access-Control-Request-Headers', 'x-icp-gate']]);
is $r->{status}, 405, "a browser's preflight for the header is refused";
ok !grep({ /^access-control-/ } keys %{ $r->{headers} }),
    'with no Access-Control-Allow-* header: the browser never sends the purge';

$r = admin($t, 'POST', 'domain=www.unfiled.cn&action=purge');
is $r->{json}{zone}, 'purged', 'a purge without redis=1 drops the zone copy';
is $r->{json}{redis}, 'kept', 'and keeps the Redis hash';
is $t->get('www.unfiled.cn')->{status}, 403,
    'which answers the next request';

$r = admin($t, 'POST', 'domain=www.unfiled.cn&action=purge&redis=1');
is $r->{status}, 200, 'a purge with redis=1 answers 200';
is $r->{json}{action}, 'purge', 'saying what it did';
is $r->{json}{redis}, 'deleted', 'the Redis hash is deleted';
is $t->redis(qw(EXISTS icp:domain:unfiled.cn)), 0, 'and gone from Redis';
is $t->get('www.unfiled.cn')->{status}, 200, 'the next request is let in';
is $t->redis(qw(HGET icp:domain:unfiled.cn status)), 'filed',
    'Redis has the new verdict';

$r = admin($t, 'POST', 'domain=never.cn&action=purge&redis=1');
is_deeply [@{ $r->{json} }{qw(zone redis)}], ['absent', 'absent'],
    'a domain nobody had is absent from both';

# every action in the error log, with the client
my $log = $t->error_log;
like $log, qr/icp_gate: admin purged "unfiled\.cn" \(host "www\.unfiled\.cn"\): zone purged, redis deleted.*client: 127\.0\.0\.1/,
    'a purge is logged with what it did and who asked';
like $log, qr/icp_gate: admin looked up "filed\.cn" \(host "filed\.cn"\), asking the filing API/,
    'a lookup is logged';
is metric($t, 'icp_gate_admin_purges_total'), 3, 'icp_gate_admin_purges_total counts purges';

# a purge while the filing API fails: the old copy answers, as any copy
# whose refresh failed, and nobody asks again within icp_gate_error_ttl
$t->api_set('unfiled.cn', '500');
is admin($t, 'POST', 'domain=unfiled.cn&action=purge&redis=1')->{status}, 200,
    'a purge while the filing API fails';
my $asked = $t->api_count('unfiled.cn');
is $t->get('www.unfiled.cn')->{status}, 200, 'the old copy answers';
is $t->get('www.unfiled.cn')->{status}, 200, 'and answers the next request';
is $t->api_count('unfiled.cn') - $asked, 1,
    'the failing API was asked once, not on every request';
$t->api_set('unfiled.cn', 'filed');

# a reload while the filing API is asked: the old worker answers first
$t->api_set('slow.cn', 'filed', delay_ms => 1500);
my $answer = $t->dir . '/slow-probe.json';
my $child = fork // die "fork: $!";
if ($child == 0) {
    my $r = admin($t, 'GET', 'domain=slow.cn&probe=api');
    open my $fh, '>', $answer or POSIX::_exit(1);
    print $fh "$r->{status}\n$r->{body}";
    close $fh;
    POSIX::_exit(0);
}
sleep 0.3;
$t->reload;
waitpid $child, 0;
my ($status, $body) = split /\n/, $t->read_file($answer) // '', 2;
is $status, 200, 'a probe under way when nginx reloads is answered';
like $body, qr/"api":\{"status":"filed"/, 'with what the filing API said';

# nginx's own access rules guard the console
is admin($t, 'GET', 'domain=filed.cn', '/icp_gate/closed')->{status}, 403,
    'a client that "deny" covers gets 403';
is admin($t, 'POST', 'domain=filed.cn&action=purge', '/icp_gate/closed')->{status},
    403, 'and cannot purge';

# a live session whose domain lost its filing is dropped by the purge
SKIP: {
    skip 'ffmpeg is not installed', 6 unless $ffmpeg;

    my $pub = publish_start($t, tcurl($t, 'push.live.cn'), 'room');
    ok $t->wait_for(sub { (metric($t, 'icp_gate_live_sessions{proto="rtmp"}') // 0) == 1 }, 10),
        'a live publisher is watched (icp_gate_live_sessions)';
    $t->api_set('live.cn', 'revoked');
    my $start = time;
    $r = admin($t, 'POST', 'domain=live.cn&action=purge&redis=1');
    is $r->{json}{redis}, 'deleted', 'its hash is purged';
    ok $t->wait_for(sub { grep { ($_->{stage} // '') eq 'live' && $_->{domain} eq 'live.cn' }
                          $t->log_lines('reject.log') }, 5),
        'the live session is dropped as revoked';
    my $took = time - $start;
    cmp_ok $took, '<', 3, 'at once, not at the next icp_gate_recheck (60s)';
    diag sprintf 'purge to drop: %.2fs', $took;
    my ($code, $err) = client_stop($t, $pub, 5);
    like $err, qr/revoked/, 'ffmpeg is told why';
    is metric($t, 'icp_gate_live_dropped_total{proto="rtmp"}'), 1,
        'icp_gate_live_dropped_total counts the drop';
}

$t->finish;
