# HTTP-FLV plays on nginx-http-flv-module: the fork plays an rtmp
# application's streams over HTTP (flv_live on), as an rtmp session on the
# HTTP connection.  The RTMP gate judges them as plays and refuses them as
# HTTP requests: icp_gate_status through nginx's error pages, held plays
# too, logged as proto http, nothing leaked; a live HTTP-FLV player is
# dropped on revocation.  The HTTP gate on such a location refuses them as
# any request.  Run against a build with the fork (make test does).

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Rtmp;

plan skip_all => 'ffmpeg is not installed'
    unless system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed', 'live.cn' => 'filed',
             'cold.cn' => ['unfiled', delay_ms => 300],
             'cold-http.cn' => ['unfiled', delay_ms => 300],
             'cold-filed.cn' => ['filed', delay_ms => 300],
             'slow.cn' => ['unfiled', delay_ms => 3000] },
    api_default => 'unfiled');
plan skip_all => 'built with nginx-rtmp-module, not nginx-http-flv-module'
    unless $t->rtmp_host eq 'flv';

$t->write_conf($t->conf_prelude . <<'EOF');
%%AUTO_PUSH%%
icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;
icp_gate_api "%%API_URL%%";
icp_gate_local_ttl 1s;

http {
    access_log %%DIR%%/access.log;

    server {
        listen 127.0.0.1:%%HTTP_PORT%%;

        # the RTMP gate alone: its application "live" is gated
        location /live {
            flv_live on;
            chunked_transfer_encoding on;
            icp_gate_status 451;
            error_page 451 /refused.html;
        }

        # the HTTP gate alone: application "open" has no RTMP gate
        location /open {
            flv_live on;
            icp_gate on;
            icp_gate_status 451;
            icp_gate_log %%DIR%%/reject-http.log;
            error_page 451 /refused.html;
        }

        location = /refused.html {
            internal;
            root %%DIR%%/html;
        }
    }
}

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;

        application live {
            live on;
            idle_streams off;
            icp_gate on;
            icp_gate_recheck 1s;
            icp_gate_log %%DIR%%/reject.log;
        }

        application open {
            live on;
        }
    }
}
EOF
mkdir $t->dir . '/html';
open my $fh, '>', $t->dir . '/html/refused.html' or die;
print $fh "refused: no ICP filing\n";
close $fh;
$t->start_nginx;

my @workers = $t->worker_pids;
my $slow = $ENV{ICP_GATE_ASAN} ? 3 : 1;    # the sanitizers' build is slower
my $http = $t->port('http');
my $rtmp = $t->port('rtmp');

sub flv_path($location, $app, $stream) {
    return "/$location?port=$rtmp&app=$app&stream=$stream";
}

# curl for $secs at most: (status, body, curl's exit code)
sub flv_get($host, $path, $secs = 3) {
    $secs *= $slow;
    my $body = $t->dir . '/body-' . int(rand 1e9);
    my $status = `curl -s -m $secs -o '$body' -w '%{http_code}' -H 'Host: $host' 'http://127.0.0.1:$http$path'`;
    my $rc = $? >> 8;
    return ($status, $t->read_file($body) // '', $rc);
}

# the workers' private memory: the zone's pages, which fill with the
# verdicts of new domains, are shared memory and not counted
sub workers_rss() {
    my $kb = 0;
    for my $pid ($t->worker_pids) {
        my $status = $t->read_file("/proc/$pid/status") // '';
        $kb += $1 if $status =~ /^RssAnon:\s+(\d+)/m;
    }
    return $kb;
}

sub access_statuses($uri_re) {
    return map { /" (\d{3}) / ? $1 : () }
           grep { /"GET $uri_re/ } split /\n/, $t->read_file('access.log') // '';
}

# a filed stream, published over RTMP, plays over HTTP-FLV
my $pub = publish_start($t, tcurl($t, 'push.filed.cn'), 'room');
my $open = publish_start($t, tcurl($t, 'push.filed.cn', 'open'), 'room', app => 'open');
sleep 2;
my ($status, $body) = flv_get('play.filed.cn', flv_path('live', 'live', 'room'), 2);
is $status, '200', 'HTTP-FLV of a filed domain: 200';
like $body, qr/^FLV/, 'and FLV flows';

# the RTMP gate alone refuses through the error pages: a cold domain (held
# while the API answers) and a cached one (refused at once)
for my $case (['play.cold.cn', 'held'], ['play.cold.cn', 'cached'],
              ['play.unfiled.cn', 'held'], ['play.unfiled.cn', 'cached'])
{
    my ($host, $how) = @$case;
    my ($status, $body, $rc) = flv_get($host, flv_path('live', 'live', 'room'));
    is $status, '451', "RTMP gate, $how refusal of $host: icp_gate_status";
    like $body, qr/refused: no ICP filing/, 'through error_page';
    is $rc, 0, 'a complete reply';
}
is $t->api_count('cold.cn'), 1, 'one API request for the cold domain';

my @lines = grep { ($_->{domain} // '') eq 'unfiled.cn' } $t->log_lines('reject.log');
is scalar @lines, 2, 'both refusals of unfiled.cn are logged';
is $lines[0]{$_->[0]}, $_->[1], "log field $_->[0]" for
    ['proto', 'http'], ['action', 'play'], ['host', 'play.unfiled.cn'],
    ['server', "127.0.0.1:$http"], ['app', 'live'], ['stream', 'room'],
    ['uri', '/live'], ['status', 451], ['stage', 'start'], ['reason', 'unfiled'];
is_deeply [access_statuses(qr{/live})], [qw(200 451 451 451 451)],
    'every play is in the access log with its status';

# HTTP/1.0 without Host: the fork would dereference the missing header and
# crash the worker; the gate answers 500 before it can
my $bare = $t->http(path => flv_path('live', 'live', 'room'), version => 'HTTP/1.0',
                    host => undef);
is $bare->{status}, 500, 'an HTTP-FLV request without Host: 500, no crash';
like $t->error_log, qr/an HTTP-FLV request without "Host"/, 'and the error log says why';

# a play the gate lets through that fails further on (idle_streams off: a
# stream nobody publishes) ends as the fork ends it without the gate, 500,
# whether its verdict was held or cached: once held, it is the gate's to
# answer (the fork would close the connection without a reply or freeing
# the request)
for my $how ('held', 'cached') {
    my ($status, undef, $rc) = flv_get('play.cold-filed.cn', flv_path('live', 'live', 'nothing'));
    is "$status $rc", '500 0', "a filed play of a stream nobody publishes, $how: 500";
}
is_deeply [access_statuses(qr{/live\?\S*stream=nothing})], [500, 500],
    'both in the access log';

# a client that leaves while its play is held: the request ends with it
my ($gone) = flv_get('play.slow.cn', flv_path('live', 'live', 'room'), 0.7);
ok $t->wait_for(sub { (access_statuses(qr{/live}))[-1] eq '499' }, 5),
    'a client gone while held is logged as 499'
    or diag join ' ', access_statuses(qr{/live});
sleep 3;    # its verdict arrives for a request that is gone

# 2 000 refusals of each kind: worker memory stays flat (the fork's own
# end of an rtmp session never frees the HTTP request: 8 KB a held refusal
# before this gate answered it as a request).  A held refusal needs a
# domain the gate has not seen: c1.cn, c2.cn, ...
my $path = flv_path('live', 'live', 'room');
my $n = 0;
for my $kind ($ENV{ICP_GATE_ASAN} ? () : ('held', 'cached')) {
    my $host = sub { $kind eq 'held' ? 'play.c' . ++$n . '.cn' : 'play.unfiled.cn' };
    # the warm-up fills what is kept per domain (the domain memo, malloc's
    # arenas): the first 2 000 new domains grow a worker, the next do not
    $t->http(host => $host->(), path => $path) for 1 .. 2000;
    my $before = workers_rss();
    my %got;
    $got{ $t->http(host => $host->(), path => $path)->{status} }++ for 1 .. 2000;
    my $after = workers_rss();
    is_deeply \%got, { 451 => 2000 }, "2 000 $kind refusals, all 451";
    my $grew = $after - $before;
    ok $grew < 2048, "worker memory flat over 2 000 $kind refusals: ${grew} KB"
        . " ($before KB -> $after KB, both workers)";
    diag "workers' RssAnon over 2000 $kind HTTP-FLV refusals: $before KB -> $after KB";
}
is $t->api_count('c4000.cn'), 1, 'the held ones were looked up'
    unless $ENV{ICP_GATE_ASAN};    # memory is measured without the sanitizers

# the HTTP gate alone, on a location of an ungated application: held, then
# cached
for my $host ('play.cold-http.cn', 'play.unfiled.cn') {
    ($status, $body) = flv_get($host, flv_path('open', 'open', 'room'));
    is $status, '451', "HTTP gate alone: an unfiled HTTP-FLV play is refused ($host)";
    like $body, qr/refused: no ICP filing/, 'through error_page';
}
($status, $body) = flv_get('play.filed.cn', flv_path('open', 'open', 'room'), 2);
is $status, '200', 'and a filed one plays';
like $body, qr/^FLV/, 'with FLV';
my ($hl) = $t->log_lines('reject-http.log');
is $hl->{proto}, 'http', 'the HTTP gate logs it as a request';

# a live HTTP-FLV player is dropped on revocation, and logged
my $curl_log = $t->dir . '/live-play.flv';
my $player = fork // die;
if ($player == 0) {
    exec 'curl', '-s', '-m', '30', '-o', $curl_log, '-H', 'Host: play.live.cn',
         "http://127.0.0.1:$http" . flv_path('live', 'live', 'room');
}
ok $t->wait_for(sub { -s $curl_log && -s $curl_log > 10_000 }, 10 * $slow),
    'a live HTTP-FLV player receives FLV';
$t->redis(qw(HSET icp:domain:live.cn status revoked source manual));
my $start = time;
my $ended = $t->wait_for(sub { waitpid($player, POSIX::WNOHANG()) == $player }, 8);
my $took = time - $start;
ok $ended, sprintf 'it is dropped after the revocation (%.1fs)', $took;
kill 'KILL', $player unless $ended;
my ($drop) = grep { ($_->{domain} // '') eq 'live.cn' } $t->log_lines('reject.log');
ok $drop && $drop->{stage} eq 'live' && $drop->{proto} eq 'http'
          && $drop->{reason} eq 'revoked',
    'and logged: proto http, stage live, revoked';

client_stop($t, $_) for $pub, $open;
is_deeply [$t->worker_pids], \@workers, 'no worker died';
$t->finish;
