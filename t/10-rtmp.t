# The RTMP gate with real ffmpeg clients: publish and play on filed domains,
# refusals with the reason in what ffmpeg prints, the overseas application,
# a cold domain held then let through, a client leaving mid-wait, a
# revocation in Redis dropping live sessions, auto_push between workers
# left alone, and HLS of a filed stream gated over HTTP.

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
    api => { 'filed.cn' => 'filed', 'pending.cn' => 'pending',
             'revoked.cn' => 'revoked',
             'cold.cn' => ['filed', delay_ms => 1500],
             'slowpoke.cn' => ['filed', delay_ms => 2500] },
    conf => <<'EOF');
rtmp_auto_push on;
rtmp_auto_push_reconnect 100ms;
icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;
icp_gate_api "%%API_URL%%";
icp_gate_local_ttl 1s;

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        icp_gate_log %%DIR%%/reject.log;
        icp_gate_recheck 1s;

        application live {
            live on;
        }

        application tv {
            live on;
            hls on;
            hls_path %%DIR%%/hls;
            hls_fragment 1s;
            hls_playlist_length 4s;
        }

        application intl {
            live on;
            icp_gate_region overseas;
        }
    }
}

http {
    access_log off;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        icp_gate on;
        icp_gate_log %%DIR%%/reject.log;
        location /hls/ {
            root %%DIR%%;
            types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
        }
    }
}
EOF
mkdir $t->dir . '/hls';    # needed from the first publish on, by workers run as nobody
chmod 0777, $t->dir . '/hls';
my @workers = $t->worker_pids;

# a filed domain: the publish runs and players receive frames, on both
# workers (auto_push carries the stream; its internal sessions are not gated)
my $pub = publish_start($t, tcurl($t, 'push.filed.cn'), 'room1');
sleep 1.5;
my $played = 0;
for (1 .. 4) {
    my ($code, $err, $frames) = play_run($t, tcurl($t, 'play.filed.cn'), 'room1');
    $played++ if $code == 0 && $frames >= 10;
}
is $played, 4, 'players of a filed stream receive frames, whichever worker they reach';
unlike $t->read_file('reject.log') // '', qr/"domain":"filed\.cn"/,
    'nothing of filed.cn is refused';
my ($code, $err) = client_stop($t, $pub);
is $code, undef, 'the filed publisher kept streaming until stopped';

# refused publishes: what ffmpeg prints, and the log
for my $case (['push.unfiled.cn', 'unfiled.cn', 'unfiled'],
              ['push.pending.cn', 'pending.cn', 'pending'],
              ['push.revoked.cn', 'revoked.cn', 'revoked'],
              ['127.0.0.1', '127.0.0.1', 'ip_literal'])
{
    my ($host, $name, $reason) = @$case;
    my ($code, $err) = publish_run($t, tcurl($t, $host), 'room2');
    ok $code, "publish on $host ends with an error";
    like $err, qr/Server error: icp_gate: publish refused for \Q$name\E: $reason/,
        "ffmpeg prints why: $reason";
    diag "ffmpeg on a refused publish: " . ($err =~ /(Server error: .*)/)[0]
        if $reason eq 'unfiled';
}

# nginx-http-flv-module refuses it itself, at connect: it looks the host
# up among its virtual hosts
my $fork = $t->rtmp_host eq 'flv';
($code, $err) = publish_run($t, 'rtmp:///live', 'room2');
like $err, $fork ? qr{live/room2: Input/output error}
                 : qr/publish refused for : no_host/,
    'a tcUrl without host: ' . ($fork ? 'refused by the fork' : 'no_host');

# refused plays of a stream that exists
$pub = publish_start($t, tcurl($t, 'push.filed.cn'), 'room3');
sleep 1.5;
for my $case (['play.unfiled.cn', 'unfiled.cn', 'unfiled'],
              ['play.pending.cn', 'pending.cn', 'pending'],
              ['play.revoked.cn', 'revoked.cn', 'revoked'],
              ['[::1]', '[::1]', 'ip_literal'],
              ['', '', 'no_host'])
{
    my ($host, $name, $reason) = @$case;
    my $tcurl = $host eq '' ? 'rtmp:///live' : tcurl($t, $host);
    my ($code, $err, $frames) = play_run($t, $tcurl, 'room3');
    ok $code, "play on $host ends with an error";
    is $frames, 0, "play on $host decodes no frame";
    like $err, $fork && $reason eq 'no_host'
               ? qr{live/room3: Input/output error}
               : qr/Server error: icp_gate: play refused for \Q$name\E: $reason/,
        "ffmpeg prints why: $reason";
    diag "ffmpeg on a refused play: " . ($err =~ /(Server error: .*)/)[0]
        if $reason eq 'unfiled';
}
client_stop($t, $pub);

my @lines = grep { $_->{proto} eq 'rtmp' } $t->log_lines('reject.log');
my ($line) = grep { $_->{reason} eq 'pending' } @lines;
is $line->{$_->[0]}, $_->[1], "log field $_->[0]" for
    ['action', 'publish'], ['host', 'push.pending.cn'], ['domain', 'pending.cn'],
    ['client', '127.0.0.1'], ['server', '127.0.0.1:' . $t->port('rtmp')],
    ['app', 'live'], ['stream', 'room2'], ['stage', 'start'];
ok defined $line->{dry_run} && !$line->{dry_run}, 'log field dry_run false';
ok((grep { $_->{action} eq 'play' && $_->{stream} eq 'room3' } @lines),
   'refused plays are logged with action play');

# the overseas application exempts every domain
$pub = publish_start($t, tcurl($t, 'push.unfiled.cn', 'intl'), 'world', app => 'intl');
sleep 1.5;
my ($pcode, $perr, $frames) = play_run($t, tcurl($t, 'play.unfiled.cn', 'intl'),
                                      'world', app => 'intl');
ok $frames >= 10, 'an overseas application plays an unfiled domain';
($code, $err) = client_stop($t, $pub);
is $code, undef, 'and publishes it';

# a cold domain: the publish is held while the API answers, then starts
my $start = time;
$pub = publish_start($t, tcurl($t, 'push.cold.cn'), 'coldroom');
sleep 3;
($pcode, $perr, $frames) = play_run($t, tcurl($t, 'play.cold.cn'), 'coldroom');
ok $frames >= 10, 'a cold domain\'s publish starts once the verdict is in';
is $t->api_count('cold.cn'), 1, 'after one API request';
($code, $err) = client_stop($t, $pub);
is $code, undef, 'the held publisher was never refused';

# a client that leaves while held
$pub = publish_start($t, tcurl($t, 'push.slowpoke.cn'), 'gone');
sleep 1;
client_stop($t, $pub);
sleep 2;    # the verdict arrives for a session that is gone
is_deeply [$t->worker_pids], \@workers, 'no worker died';
unlike $t->error_log, qr/\[alert\]/, 'no alert in the error log';

# HLS of a filed stream over HTTP, with the HTTP gate
$pub = publish_start($t, tcurl($t, 'push.filed.cn', 'tv'), 'show', app => 'tv');
ok $t->wait_for(sub { -e $t->dir . '/hls/show.m3u8' }, 10), 'HLS is written';
my $r = $t->http(host => 'play.filed.cn', path => '/hls/show.m3u8');
is $r->{status}, 200, 'the HLS playlist is served for a filed domain';
my ($segment) = $r->{body} =~ /^(show-\d+\.ts)$/m;
ok $segment, 'the playlist names a segment';
is $t->http(host => 'play.filed.cn', path => "/hls/$segment")->{status}, 200,
    'the segment is served for a filed domain';
is $t->http(host => 'play.unfiled.cn', path => "/hls/$segment")->{status}, 403,
    'and refused for an unfiled one';
client_stop($t, $pub);

# revocation: written to Redis, it drops a live publisher and its player
# within icp_gate_local_ttl + 2 x icp_gate_recheck (1s + 2 x 1s)
$t->api_set('live.cn', 'filed');
$pub = publish_start($t, tcurl($t, 'push.live.cn'), 'doomed');
sleep 1.5;
my $player = play_start($t, tcurl($t, 'play.live.cn'), 'doomed');
ok $t->wait_for(sub { ($t->read_file($player->{log}) // '') =~ /frame=\s*\d+/ }, 10),
    'the player of live.cn receives frames';
$t->redis(qw(HSET icp:domain:live.cn status revoked source manual));
$start = time;
($code, $err) = client_stop($t, $pub, 6);
my $took = time - $start;
ok defined $code, sprintf 'the publisher was dropped (after %.1fs)', $took;
ok $took < 4.5, "within icp_gate_local_ttl + 2 x icp_gate_recheck and some slack";
like $err, qr/Server error: icp_gate: publish refused for live\.cn: revoked/,
    'the dropped publisher is told why';
diag 'ffmpeg publishing when dropped: ' . (($err =~ /(Server error: .*)/)[0] // $err);
my ($player_code, $player_err) = client_stop($t, $player, 3);
ok defined $player_code, 'its player was dropped too';
like $player_err, qr/Server error: icp_gate: play refused for live\.cn: revoked/,
    'and told why';
diag 'ffmpeg playing when dropped: '
    . (($player_err =~ /(Server error: .*)/)[0] // substr $player_err, -300);
my @dropped = grep { ($_->{stream} // '') eq 'doomed' } $t->log_lines('reject.log');
ok((grep { $_->{action} eq 'publish' && $_->{reason} eq 'revoked'
           && $_->{stage} eq 'live' } @dropped),
   'the dropped publish is logged as revoked, stage live');
ok((grep { $_->{action} eq 'play' && $_->{reason} eq 'revoked'
           && $_->{stage} eq 'live' } @dropped),
   'the dropped play is logged as revoked, stage live');

is_deeply [$t->worker_pids], \@workers, 'every worker is alive';
$t->finish;
