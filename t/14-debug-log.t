# With "error_log ... debug" on a --with-debug build (make test's ASan run),
# a cold domain leaves the gate's whole trail in the log: requests held and
# woken, the flight started, joined and finished, the Redis command out and
# back, the filing API transfer started and ended; a live RTMP session is
# seen rechecked.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Rtmp;

my $bin = IcpGate::Test->new->nginx_bin;
plan skip_all => "$bin is not built --with-debug (make test's ASan build is)"
    unless `'$bin' -V 2>&1` =~ /--with-debug/;

my $ffmpeg = system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

my $t = IcpGate::Test->gated(
    redis => 1,
    api   => { 'cold.cn' => ['filed', delay_ms => 400], 'live.cn' => 'filed' },
    conf  => {
        workers => 1,
        main    => 'error_log %%DIR%%/debug.log debug;'
                 . ' rtmp { server { listen 127.0.0.1:%%RTMP_PORT%%;'
                 . ' icp_gate on; icp_gate_recheck 1s;'
                 . ' application live { live on; } } }',
    });

# two clients of one cold domain: the second joins the first one's flight
my $statuses = $t->http_parallel(2, host => 'live.cold.cn', path => '/index.html');
is_deeply $statuses, [200, 200], 'both requests for the cold domain played';
is $t->get('play.cold.cn')->{status}, 200, 'and a third from the zone';

my $log = $t->read_file('debug.log') // '';

# in the order they happen
my @trail = (
    [qr/icp_gate: flight for "cold\.cn" started, asking/, 'a flight starts'],
    [qr/icp_gate: asking Redis about "cold\.cn"/, 'Redis is asked first'],
    [qr/icp_gate: redis read sent/, 'the Redis command goes out'],
    [qr/icp_gate: redis answered the read: no verdict \(0 fields\) at \d{16}/,
     'and comes back without an entry, with Redis\'s time'],
    [qr/icp_gate: filing API transfer for "cold\.cn" started/,
     'the filing API transfer starts'],
    [qr/icp_gate: filing API transfer for "cold\.cn" ended: No error, a verdict/,
     'and ends with the verdict'],
    [qr/icp_gate: redis write sent/, 'the verdict is written to Redis'],
    [qr/icp_gate: flight for "cold\.cn" finished: filed/, 'the flight ends'],
    [qr/icp_gate: waking a waiter/, 'its waiters wake'],
    [qr/icp_gate: request woken for "cold\.cn": allow/,
     'and the requests go on'],
    [qr/icp_gate: "cold\.cn" is filed in the zone/, 'the third hits the zone'],
);

my $at = 0;
for my $step (@trail) {
    my ($re, $what) = @$step;
    my $found = $log =~ /$re/ ? $+[0] : undef;
    ok defined $found && $found > $at, "debug log: $what";
    $at = $found // $at;
}

# while the first request's flight runs, whenever the second comes
like $log, qr/icp_gate: waiting up to 3000ms for "cold\.cn"/,
    'debug log: a request waits';
like $log, qr/icp_gate: request held for "cold\.cn"/,
    'debug log: the HTTP gate holds it';
like $log, qr/icp_gate: flight for "cold\.cn" under way, joining it/,
    'debug log: the second request joins the flight';

is scalar(() = $log =~ /icp_gate: request woken for "cold\.cn"/g), 2,
    'two requests were held and woken';

SKIP: {
    skip 'ffmpeg is not installed', 2 unless $ffmpeg;
    my $pub = publish_start($t, tcurl($t, 'push.live.cn'), 'room');
    ok $t->wait_for(sub {
        ($t->read_file('debug.log') // '')
            =~ /icp_gate: live publish rechecked, "live\.cn": allow/
    }, 10), 'a live RTMP publish is seen rechecked';
    like $t->read_file('debug.log'), qr/icp_gate: publish held for "live\.cn"/,
        'the RTMP gate holds a publish for a cold domain';
    client_stop($t, $pub);
}

$t->finish;
