# Concurrent first lookups of one domain make one filing API request, on
# two workers; an expired verdict keeps answering while one refresh runs.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1, api => {},
    conf => { workers => 2,
              # the kernel spreads connections over both workers by hash,
              # not to whichever wakes first (one, on a loaded machine)
              listen => 'reuseport',
              redis => '',
              main => 'icp_gate_ttl 2s; icp_gate_negative_ttl 2s;',
              http => 'log_format pid "$pid $status $host";',
              server => 'access_log %%DIR%%/access.log pid;' });

# 50 clients at once on a cold domain whose API answer takes 500 ms
$t->api_set('cold.cn', 'filed', delay_ms => 500);
my $statuses = $t->http_parallel(50, host => 'live.cold.cn', path => '/index.html');
is scalar(grep { $_ == 200 } @$statuses), 50, '50 concurrent clients of a cold domain all play';
is $t->api_count('cold.cn'), 1, '50 concurrent cold clients made exactly 1 API request';
diag 'cold.cn API requests for 50 concurrent clients: ' . $t->api_count('cold.cn');

my %pids;
for (split /\n/, $t->read_file('access.log') // '') {
    my ($pid, $status, $host) = split ' ';
    $pids{$pid}++ if $host eq 'live.cold.cn';
}
is scalar(keys %pids), 2, 'both workers served the cold domain'
    or diag explain \%pids;

# the same for a refused domain
$t->api_set('coldno.cn', 'unfiled', delay_ms => 300);
$statuses = $t->http_parallel(30, host => 'live.coldno.cn', path => '/index.html');
is scalar(grep { $_ == 403 } @$statuses), 30, '30 concurrent clients of an unfiled domain refused';
is $t->api_count('coldno.cn'), 1, 'with one API request';

# serve-stale: past icp_gate_ttl the old verdict answers at once while one
# background refresh asks the API
sleep 2.2;
$t->api_set('cold.cn', 'filed', delay_ms => 1000);
my $start = time;
$statuses = $t->http_parallel(20, host => 'live.cold.cn', path => '/index.html');
my $took = time - $start;
is scalar(grep { $_ == 200 } @$statuses), 20, 'an expired verdict keeps answering';
ok $took < 0.9, sprintf 'without waiting for the slow refresh (%.2fs)', $took;
ok $t->wait_for(sub { $t->api_count('cold.cn') == 2 }, 3),
    'one refresh request for 20 clients of an expired domain';
sleep 1.2;
is $t->api_count('cold.cn'), 2, 'and no more';

# a refresh that changes the verdict takes effect
$t->api_set('cold.cn', 'revoked');
sleep 2.2;
get_until_403();

sub get_until_403 {
    ok $t->wait_for(sub {
        $t->get('live.cold.cn')->{status} == 403
    }, 5), 'a revocation found by a refresh takes effect';
}

$t->finish;
