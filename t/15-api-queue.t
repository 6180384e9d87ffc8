# The filing API has a queue, not a wall: icp_gate_api_concurrency
# transfers run at once, further lookups wait their turn and still get
# their verdict within icp_gate_wait; only a full queue refuses at once,
# in one log line however many it refuses; a request that waited longer
# than icp_gate_api_timeout in the queue is not sent.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Conf;

sub statuses($list) {
    my %n;
    $n{$_}++ for @$list;
    return join ', ', map { "$n{$_} × $_" } sort keys %n;
}

# nginx again with $main; $n cold domains at once, the API answering in
# $delay ms; what they got, by status, and the list of statuses
my @last;
sub burst($t, $n, $tag, $delay, $main) {
    $t->stop_nginx;
    $t->api_default('filed', delay_ms => $delay);
    $t->api_reset;
    $t->write_conf(IcpGate::Conf::gate_conf($t, workers => 1, redis => '',
                                            main => $main));
    $t->start_nginx;
    @last = @{ $t->http_parallel($n, host => sub ($i) { "live.d$i-$tag.cn" },
                                 path => '/index.html') };
    return statuses(\@last);
}

# 100 cold filed domains on one worker, the API answering in 500 ms: 64
# transfers at once (the default), the other 36 queued
my $t = IcpGate::Test->gated(
    api_default => ['filed', delay_ms => 500],
    conf => { workers => 1, redis => '' });
my $got = $t->http_parallel(100, host => sub ($i) { "live.d$i-busy.cn" },
                            path => '/index.html');
is statuses($got), '100 × 200',
    '100 cold filed domains at once: every one plays (64 at once, 36 queued)';
is $t->api_total, 100, 'each asked about once';
unlike $t->error_log, qr/queue full|not sent/, 'nothing refused or dropped';

# a queue of 16 × 2: 2 transfers, 32 waiting, the rest refused at once
is burst($t, 40, 'full', 100, 'icp_gate_api_concurrency 2;'), '34 × 200, 6 × 403',
    '40 at once with 2 transfers and 32 places: 34 play, 6 are refused';
is $t->api_total, 34, 'the refused were not asked about';
my @full = $t->error_log =~ /(filing API queue full \(2 running, 32 waiting\))/g;
ok @full >= 1 && @full <= 2,
    'the full queue is logged once a second, not once a refusal ('
    . scalar(@full) . ' lines)';
like $t->error_log,
    qr/\d+ lookups refused since the last such line, the last one for "d\d+-full\.cn"/,
    'with how many it refused, and for which domain';
my ($refused) = grep { $last[$_] == 403 } 0 .. $#last;
is $t->get("live.d$refused-full.cn")->{status}, 200,
    'a full queue is no failure to remember: the refused domain plays next';

# a request that waited longer than icp_gate_api_timeout is not sent
is burst($t, 5, 'late', 600,
         'icp_gate_api_concurrency 1; icp_gate_api_timeout 1s;'),
    '2 × 200, 3 × 403',
    'one transfer at a time of 600 ms: two within the API timeout play';
is $t->api_total, 2, 'the three that waited past it were never sent';
like $t->error_log, qr/filing API request for "d\d-late\.cn" not sent after \d+ ms in the queue/,
    'and the log says so';

$t->finish;
