package IcpGate::Rtmp;

# ffmpeg as the RTMP client of the tests: it connects to 127.0.0.1 and
# claims a domain with -rtmp_tcurl, as a streaming client on a CDN would.

use v5.36;
no warnings "exec";

use Exporter 'import';
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(publish_start play_start client_stop publish_run play_run
                 tcurl);

my @ENCODE = (qw(-f lavfi -i testsrc=size=160x120:rate=15),
              qw(-c:v libx264 -preset ultrafast -tune zerolatency -g 15 -f flv));

sub tcurl($t, $host, $app = 'live') {
    return "rtmp://$host:" . $t->port('rtmp') . "/$app";
}

sub _url($t, $app, $stream) {
    return 'rtmp://127.0.0.1:' . $t->port('rtmp') . "/$app/$stream";
}

# ffmpeg in the background, its stderr in a file: { pid, log }
sub _spawn($t, $name, @args) {
    my $log = $t->dir . "/$name-" . int(rand 1e9) . '.log';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $log;
        exec 'ffmpeg', qw(-hide_banner -nostdin), @args;
        POSIX::_exit(127);
    }
    return { pid => $pid, log => $log };
}

# a publisher in the background: { pid, log }
sub publish_start($t, $tcurl, $stream, %o) {
    return _spawn($t, "publish-$stream", qw(-loglevel warning -re), @ENCODE,
                  '-rtmp_tcurl', $tcurl, _url($t, $o{app} // 'live', $stream));
}

# waits up to $grace seconds for a client to end, then stops it; returns its
# exit code (undef when it had to be stopped) and what it printed
sub client_stop($t, $p, $grace = 0) {
    my $deadline = time + $grace;
    my $code;
    while (1) {
        my $r = waitpid $p->{pid}, POSIX::WNOHANG();
        if ($r == $p->{pid}) { $code = $? >> 8; last }
        if (time >= $deadline) {
            kill 'TERM', $p->{pid};
            waitpid $p->{pid}, 0;
            last;
        }
        sleep 0.05;
    }
    return ($code, $t->read_file($p->{log}) // '');
}

# a publish that is expected to end by itself: (exit code, stderr)
sub publish_run($t, $tcurl, $stream, %o) {
    my $p = publish_start($t, $tcurl, $stream, %o);
    return client_stop($t, $p, $o{timeout} // 8);
}

# a player in the background, decoding $o{frames} frames or until stopped
sub play_start($t, $tcurl, $stream, %o) {
    return _spawn($t, "play-$stream", qw(-loglevel info -analyzeduration 500000),
                  '-rtmp_tcurl', $tcurl,
                  '-i', _url($t, $o{app} // 'live', $stream),
                  $o{frames} ? ('-frames:v', $o{frames}) : (), qw(-f null -));
}

# plays 10 video frames: (exit code, stderr, frames decoded)
sub play_run($t, $tcurl, $stream, %o) {
    my $p = play_start($t, $tcurl, $stream, frames => 10, %o);
    my ($code, $err) = client_stop($t, $p, $o{timeout} // 10);
    my @frames = $err =~ /frame=\s*(\d+)/g;
    return ($code // 124, $err, $frames[-1] // 0);
}

1;
