# The RTMP gate decides before every other rtmp module acts on a publish or
# a play: rtmp_auto_push (which hooks publish in init_process, after every
# postconfiguration), push relays, exec_push / exec_publish / exec_play,
# record, hls, dash and the on_publish / on_play notifications.  A refused
# publish leaves no trace of any of them; a filed one, on the same
# configuration, starts every one of them (so that the absence means
# something).

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
    api => { 'filed.cn' => 'filed', 'cold.cn' => ['unfiled', delay_ms => 300] },
    api_default => 'unfiled',
    conf => <<'EOF2', nginx => 0);
%%AUTO_PUSH%%
icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;
icp_gate_api "%%API_URL%%";

http {
    access_log off;

    server {
        listen 127.0.0.1:%%HTTP_PORT%%;

        location /notify/ {
            access_log %%DIR%%/notify.log;
            return 200 "ok\n";
        }
    }
}

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate_log %%DIR%%/reject.log;
        respawn off;

        application live {
            icp_gate on;
            live on;

            push rtmp://127.0.0.1:%%RTMP_PORT%%/sink;

            exec_push sh -c "echo $name >> %%DIR%%/exec_push.log";
            exec_publish sh -c "echo $name >> %%DIR%%/exec_publish.log";
            exec_play sh -c "echo $name >> %%DIR%%/exec_play.log";

            record all;
            record_path %%DIR%%/rec;

            hls on;
            hls_path %%DIR%%/hls;
            hls_fragment 1s;

            dash on;
            dash_path %%DIR%%/dash;
            dash_fragment 1s;

            on_publish http://127.0.0.1:%%HTTP_PORT%%/notify/publish;
            on_play http://127.0.0.1:%%HTTP_PORT%%/notify/play;
        }

        # where the push relay goes: not gated, its tcUrl is 127.0.0.1
        application sink {
            live on;
        }
    }
}
EOF2
mkdir $t->dir . '/rec' or die "mkdir: $!";
chmod 0777, $t->dir . '/rec';    # the workers' user writes there
$t->start_nginx;

my @workers = $t->worker_pids;

# every trace a publish or play of $stream may leave, by module
sub traces($stream) {
    my $dir = $t->dir;
    my %seen;
    my $errors = $t->error_log;
    $seen{auto_push} = () = $errors =~ m{relay: create push name='\Q$stream\E' .* url='unix:.*/nginx-(?:rtmp\.|http-flv\.)}g;
    $seen{push}      = () = $errors =~ m{relay: create push name='\Q$stream\E' .* url='127\.0\.0\.1:\d+/sink'}g;
    for my $exec (qw(exec_push exec_publish exec_play)) {
        $seen{$exec} = grep { $_ eq $stream }
                       split /\n/, $t->read_file("$exec.log") // '';
    }
    $seen{record}  = () = glob "$dir/rec/$stream*.flv";
    $seen{hls}     = -e "$dir/hls/$stream.m3u8" ? 1 : 0;
    $seen{dash}    = -e "$dir/dash/$stream.mpd" ? 1 : 0;
    for my $call (qw(publish play)) {
        $seen{"on_$call"} = () = ($t->read_file('notify.log') // '')
                                 =~ m{POST /notify/$call .*}g;
    }
    return \%seen;
}

sub refused_count($stream) {
    return scalar grep { ($_->{stream} // '') eq $stream }
                  $t->log_lines('reject.log');
}

# refused: a cold domain (held, then refused) and a cached one (at once),
# and each worker gets its turn with three tries
for my $try (1 .. 3) {
    for my $host (qw(push.cold.cn push.unfiled.cn)) {
        my ($code, $err) = publish_run($t, tcurl($t, $host), "gone$try");
        ok $code, "publish $try on $host is refused";
    }
}
is refused_count("gone$_"), 2, "both refusals of gone$_ are logged" for 1 .. 3;

my ($code, $err, $frames) = play_run($t, tcurl($t, 'play.unfiled.cn'), 'gone1');
ok $code, 'a play on an unfiled domain is refused';

sleep 2;    # what a refused publish might have started has had time to
for my $try (1 .. 3) {
    my $seen = traces("gone$try");
    my @left = grep { $seen->{$_} } sort keys %$seen;
    is "@left", '', "a refused publish (gone$try) starts none of: "
                    . join ' ', sort keys %$seen;
}

# the same configuration, a filed domain: every module acts
my $pub = publish_start($t, tcurl($t, 'push.filed.cn'), 'room');
my $want = { auto_push => 1, push => 1, exec_push => 1, exec_publish => 1,
             record => 1, hls => 1, dash => 1, on_publish => 1 };
my $all = $t->wait_for(sub {
    my $seen = traces('room');
    !grep { !$seen->{$_} } keys %$want;
}, 15);
my $seen = traces('room');
ok $all, 'a filed publish starts every one of them: '
         . join ' ', map { "$_=$seen->{$_}" } sort keys %$seen;
($code, $err, $frames) = play_run($t, tcurl($t, 'play.filed.cn'), 'room');
ok $frames >= 10, 'and plays';
ok $t->wait_for(sub { traces('room')->{on_play} && traces('room')->{exec_play} }, 5),
    'the play went through on_play and exec_play';
client_stop($t, $pub);

is_deeply [$t->worker_pids], \@workers, 'no worker died';
$t->finish;
