# No way around the RTMP gate on a unix socket: nginx-rtmp marks every
# session accepted on one as an auto-push between workers, which the gate
# used to leave alone.  Only the workers' own auto_push socket, with a
# worker of this nginx at the other end, is left alone now; a client on an
# operator's "listen unix:" (behind stunnel, haproxy, a local transcoder)
# is judged like any other.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Rtmp;

plan skip_all => 'ffmpeg is not installed'
    unless system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed' },
    conf => <<'EOF2', nginx => 0);
%%AUTO_PUSH%%
icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;
icp_gate_api "%%API_URL%%";

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        listen unix:%%DIR%%/rtmp.sock;
        icp_gate on;
        icp_gate_log %%DIR%%/reject.log;

        application live {
            live on;
        }
    }
}
EOF2
$t->start_nginx;

# ffmpeg speaks RTMP over TCP only: a forwarder stands in for stunnel
my $port = $t->port('unix_front');
my $front = $t->_spawn($t->dir . '/front.log',
    $ENV{ICP_GATE_PYTHON} // 'python3', $t->repo . '/t/tcp_to_unix.py',
    '--port', $port, '--path', $t->dir . '/rtmp.sock');
$t->_await_service('tcp to unix', $front, $t->dir . '/front.log', 5,
                   sub { IO::Socket::INET->new("127.0.0.1:$port") });
END { kill 'KILL', $front if $front; }

sub via_unix($host) { "rtmp://$host:$port/live" }
sub unix_url($stream) { "rtmp://127.0.0.1:$port/live/$stream" }

# an unfiled publish over the unix socket is refused
my $p = IcpGate::Rtmp::_spawn($t, 'publish-unix',
    qw(-loglevel warning -re -f lavfi -i testsrc=size=160x120:rate=15
       -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f flv),
    '-rtmp_tcurl', via_unix('push.unfiled.cn'), unix_url('room'));
my ($code, $err) = client_stop($t, $p, 8);
ok $code, 'an unfiled publish over a unix listener ends with an error';
like $err, qr/publish refused for unfiled\.cn: unfiled/,
    'ffmpeg prints why';
diag 'ffmpeg on an unfiled publish over "listen unix:": '
    . (($err =~ /(Server error: .*)/)[0] // $err);
my ($line) = grep { ($_->{domain} // '') eq 'unfiled.cn' } $t->log_lines('reject.log');
ok $line, 'and it is in the rejection log';

# a filed one plays on, and auto_push still carries it to the other
# worker: its own sessions are left alone
$p = IcpGate::Rtmp::_spawn($t, 'publish-unix-filed',
    qw(-loglevel warning -re -f lavfi -i testsrc=size=160x120:rate=15
       -c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f flv),
    '-rtmp_tcurl', via_unix('push.filed.cn'), unix_url('room2'));
sleep 1.5;
my $played = 0;
for (1 .. 4) {
    my ($code, $err, $frames) = play_run($t, tcurl($t, 'play.filed.cn'), 'room2');
    $played++ if $code == 0 && $frames >= 10;
}
is $played, 4, 'a filed publish over the unix listener reaches players on every worker';
($code, $err) = client_stop($t, $p);
is $code, undef, 'the filed publisher kept streaming until stopped';
unlike $t->error_log, qr/auto_push socket from pid/,
    'every auto-push came from a worker of this nginx';

$t->finish;
