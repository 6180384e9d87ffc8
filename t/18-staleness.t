# Staleness with a bound (RFC 5861's terms): a copy in the zone is fresh
# for icp_gate_local_ttl, answers while one refresh runs for
# icp_gate_stale_while_revalidate past that, and past that a request waits
# for the refresh, getting the stale copy only if the refresh fails.  So a
# change written to Redis reaches every request, HTTP and RTMP, within
# local_ttl + stale_while_revalidate, however quiet the domain was.  (The
# node's invalidation channel, which brings a change at once, is off here:
# this is how a node without it behaves, and how it behaves while it is
# away.)

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Rtmp;

my $have_ffmpeg = system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

my $t = IcpGate::Test->gated(
    redis => 1,
    api_default => 'filed',
    conf => <<'EOF');
icp_gate_redis 127.0.0.1:%%REDIS_PORT%% tracking=off;
icp_gate_api "%%API_URL%%";
icp_gate_local_ttl 1s;
icp_gate_stale_while_revalidate 1s;

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        icp_gate_recheck 3s;
        application live {
            live on;
        }
    }
}

http {
    access_log off;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        root %%DIR%%/html;
        icp_gate on;
        add_header X-Reason "$icp_gate_reason" always;
    }
}
EOF
mkdir $t->dir . '/html';
open my $fh, '>', $t->dir . '/html/index.html' or die;
print $fh "ok\n";
close $fh;

sub revoke($domain) {
    $t->redis('HSET', "icp:domain:$domain", 'status', 'revoked');
}

# within the window: the stale copy answers at once, its refresh runs
is $t->get('live.busy.cn')->{status}, 200, 'busy.cn plays';
sleep 1.3;
revoke('busy.cn');
my $r = $t->get('live.busy.cn');
is $r->{status}, 200, 'just past local_ttl the copy still answers';
ok $r->{elapsed} < 0.2, sprintf 'at once (%.3fs)', $r->{elapsed};
ok $t->wait_for(sub { $t->get('live.busy.cn')->{status} == 403 }, 1),
    'and its refresh brings the revocation in';

# a quiet spell past the window: the first request waits for Redis
is $t->get('live.quiet.cn')->{status}, 200, 'quiet.cn plays';
revoke('quiet.cn');
sleep 2.3;
$r = $t->get('live.quiet.cn');
is $r->{status}, 403, 'after a quiet spell the first request sees the revocation';
is $r->{headers}{'x-reason'}, 'revoked', 'as revoked';
ok $r->{elapsed} < 0.5, sprintf 'for the price of one Redis read (%.3fs)',
                               $r->{elapsed};
diag sprintf 'first request 2.3 s after a revocation (local_ttl 1s, '
           . 'stale_while_revalidate 1s): %d in %.3fs',
             $r->{status}, $r->{elapsed};

# stale-if-error: the refresh fails, the stale copy answers
is $t->get('live.shaky.cn')->{status}, 200, 'shaky.cn plays';
$t->redis('DEL', 'icp:domain:shaky.cn');
$t->api_set('shaky.cn', '500');
sleep 2.3;
$r = $t->get('live.shaky.cn');
is $r->{status}, 200, 'a failed refresh: the stale verdict answers';
is $t->api_count('shaky.cn'), 2, 'after asking the API again';

# the same rule for RTMP publish
SKIP: {
    skip 'ffmpeg is not installed', 5 unless $have_ffmpeg;

    my $pub = publish_start($t, tcurl($t, 'push.stream.cn'), 'room');
    sleep 1.5;
    my ($code, $err) = client_stop($t, $pub);
    is $code, undef, 'a publish on stream.cn runs';
    unlike $err, qr/refused/, 'unrefused';

    revoke('stream.cn');
    sleep 2.3;
    ($code, $err) = publish_run($t, tcurl($t, 'push.stream.cn'), 'room');
    ok $code, 'after a quiet spell a publish on the revoked domain fails';
    like $err, qr/publish refused for stream\.cn: revoked/,
        'refused as revoked';

    # a live session rechecked less often than local_ttl +
    # stale_while_revalidate: each recheck finds the copy too stale, and
    # the verdict its refresh brought must still count at the next one
    $pub = publish_start($t, tcurl($t, 'push.onair.cn'), 'room');
    sleep 1.5;
    revoke('onair.cn');
    my $start = time;
    ($code, $err) = client_stop($t, $pub, 10);
    ok defined $code, sprintf 'a live publish on a revoked domain is dropped '
                            . '(%.1fs after the revocation)', time - $start;
}

$t->finish;
