# A filing API that fails, answers garbage, is slow or hangs: no verdict is
# cached from a failure, the failure is remembered for icp_gate_error_ttl
# (the API is not asked again meanwhile, on any worker), icp_gate_wait
# bounds every wait, and the worker keeps serving.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1, api => {},
    conf => { main => 'icp_gate_api_timeout 1500ms; icp_gate_error_ttl 1s;',
              http => 'icp_gate_wait 800ms;',
              server => 'location /patient/ { icp_gate_wait 3s; }' });
my @workers = $t->worker_pids;

for my $mode (qw(garbage 500 badstatus notobject)) {
    my $domain = "$mode-api.cn";
    $t->api_set($domain, $mode);

    my $r = $t->get("live.$domain");
    is $r->{status}, 403, "API answering $mode: refused";
    is $r->{headers}{'x-reason'}, 'lookup_failed', "$mode: reason lookup_failed";

    my @held = map { $t->get("play$_.$domain") } 1 .. 5;
    is_deeply [map { $_->{headers}{'x-reason'} } @held], [('lookup_failed') x 5],
        "$mode: the next requests within icp_gate_error_ttl fail too";
    is $t->api_count($domain), 1, "$mode: without asking the API again";

    sleep 1.1;
    $t->get("live.$domain");
    is $t->api_count($domain), 2,
        "$mode: no verdict was cached: past icp_gate_error_ttl it is asked again";
    is $t->redis('EXISTS', "icp:domain:$domain"), 0, "$mode: nothing written to Redis";
}

like $t->error_log, qr/filing API answered "500-api\.cn" with status 500/,
    'a 500 is logged';
like $t->error_log, qr/filing API answered "garbage-api\.cn" with a body that is not JSON/,
    'a garbage body is logged';

# slower than icp_gate_wait: refused in time, then cached once it answers
$t->api_set('slow.cn', 'filed', delay_ms => 1200);
my $r = $t->get('live.slow.cn');
is $r->{status}, 403, 'an API slower than icp_gate_wait: refused';
is $r->{headers}{'x-reason'}, 'lookup_failed', 'as lookup_failed';
ok $r->{elapsed} >= 0.7 && $r->{elapsed} < 1.2,
    sprintf 'after icp_gate_wait (%.2fs)', $r->{elapsed};
sleep 0.8;
$r = $t->get('live.slow.cn');
is $r->{status}, 200, 'the late answer was kept for the next request';
ok $r->{elapsed} < 0.3, sprintf 'which did not wait (%.2fs)', $r->{elapsed};
is $t->api_count('slow.cn'), 1, 'one API request in all';

# slower than the API but within icp_gate_wait: the request waits
$t->api_set('sluggish.cn', 'filed', delay_ms => 400);
$r = $t->get('live.sluggish.cn', '/patient/x');
is $r->{status}, 404, 'within icp_gate_wait the request waits for the verdict';
ok $r->{elapsed} >= 0.35, sprintf 'and waited (%.2fs)', $r->{elapsed};

# an API that hangs, and one that answers a byte at a time:
# icp_gate_api_timeout ends both
for my $mode ('hang', 'drip') {
    $t->api_set("$mode.cn", $mode);
    $r = $t->get("live.$mode.cn", '/patient/x');
    is $r->{status}, 403, "$mode: refused";
    ok $r->{elapsed} >= 1.4 && $r->{elapsed} < 2.5,
        sprintf "$mode: after icp_gate_api_timeout (%.2fs)", $r->{elapsed};
    like $t->error_log,
        qr/filing API request for "\Q$mode.cn\E" failed: .*timed out/,
        "$mode: the timeout is logged";
}

# a failing API over 10 s of steady requests: one API request per
# icp_gate_error_ttl (1s here)
$t->api_set('down.cn', '500');
my $deadline = time + 10;
my $sent = 0;
while (time < $deadline) {
    $sent++;
    $t->get('live.down.cn');
    sleep 0.05;
}
my $asked = $t->api_count('down.cn');
ok $asked >= 5 && $asked <= 11,
    "$sent requests over 10 s of a failing API: $asked API requests";
diag "a failing API (error_ttl 1s), $sent requests over 10 s: $asked API requests";

# the API gone altogether
$t->stop_api;
$r = $t->get('live.gone.cn');
is $r->{status}, 403, 'an unreachable API: refused';
is $r->{headers}{'x-reason'}, 'lookup_failed', 'as lookup_failed';
is $t->get('live.slow.cn')->{status}, 200, 'known domains keep playing';

is_deeply [$t->worker_pids], \@workers, 'no worker died';
unlike $t->error_log, qr/\[alert\]/,
    'no alert: curl\'s closed sockets left epoll cleanly';
$t->finish;
