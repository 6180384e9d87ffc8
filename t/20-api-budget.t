# icp_gate_api_rate: a budget of filing API requests for the node, shared
# by its workers in the zone.  Over it, a domain without a verdict is a
# failed lookup (icp_gate_on_error); a known domain's refresh is never
# held back.  Random Host headers cannot run up the API bill.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    api_default => 'filed',
    conf => { workers => 2, redis => '', listen => 'reuseport',
              main => 'icp_gate_api_rate 5/s; icp_gate_ttl 1s;' });

is $t->get('live.known.cn')->{status}, 200, 'known.cn plays';
sleep 1.2;    # known.cn expires; the budget is full again

# a burst of invented domains, on both workers
my $statuses = $t->http_parallel(20, host => sub ($i) { "x$i.random$i.cn" });
my %by;
$by{$_}++ for @$statuses;
ok $by{200} >= 4 && $by{200} <= 6,
    "a burst of 20 new domains: about a second's budget played ($by{200})";
is $by{200} + ($by{403} // 0), 20, 'the rest were refused';
is $t->api_total, 1 + $by{200}, 'and cost no API request';
diag sprintf 'icp_gate_api_rate 5/s, 20 new domains at once: %s',
             join(', ', map { "$by{$_} x $_" } sort keys %by);
like $t->error_log, qr/filing API budget \(icp_gate_api_rate\) spent/,
    'the error log says the budget is spent';

# the budget is spent, but a known domain is refreshed all the same
my $r = $t->get('live.known.cn');
is $r->{status}, 200, 'the known domain plays';
ok $t->wait_for(sub { $t->api_count('known.cn') == 2 }, 2),
    'and its refresh asked the API, budget or not';

my $refused = $t->get('x99.random99.cn');
is $refused->{status}, 403, 'while spent, a new domain is refused';
is $refused->{headers}{'x-reason'}, 'lookup_failed', 'as lookup_failed';

sleep 1.1;
is $t->get('later.cn')->{status}, 200, 'a second later a new domain plays';
is $t->get('x99.random99.cn')->{status}, 200,
    'as does the one refused before: no failure was remembered';

$t->finish;
