# What an operator sets per block: overseas exemption, dry_run,
# icp_gate_on_error, icp_gate_status, error_page, satisfy any, off.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed',
             'abroad.com' => ['unfiled', region => 'overseas'],
             'both.com' => ['filed', region => 'global'],
             'broken.cn' => '500' },
    conf => { server => <<'EOF',
        location /dry/ { icp_gate dry_run; }
        location /lenient/ { icp_gate_on_error allow; }
        location /451/ { icp_gate_status 451; }
        location /open/ { icp_gate off; }
        location /pretty/ {
            error_page 403 /refused.html;
        }
        location = /refused.html { internal; }
        location /satisfy/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            auth_basic "closed";
            auth_basic_user_file /nonexistent;
        }
EOF
    servers => <<'EOF' });
    server {
        listen 127.0.0.1:%%PORT_overseas%%;
        root %%DIR%%/html;
        icp_gate_region overseas;
        add_header X-Result "$icp_gate_result" always;
        add_header X-Reason "$icp_gate_reason" always;
    }
EOF

# the overseas-only server exempts every host
my $r = $t->get('live.unfiled.cn', '/index.html', port => $t->port('overseas'));
is $r->{status}, 200, 'an overseas block serves an unfiled domain';
is $r->{headers}{'x-result'}, 'exempt', 'as exempt';
is $r->{headers}{'x-reason'}, 'overseas', 'for the reason overseas';
is $t->get('203.0.113.7', '/index.html', port => $t->port('overseas'))->{status},
    200, 'an overseas block serves an IP literal too';
is $t->api_count('unfiled.cn'), 0, 'an overseas block asks the API nothing';

# a domain whose filing record says overseas
$r = $t->get('live.abroad.com');
is $r->{status}, 200, 'a domain distributed only overseas plays';
is $r->{headers}{'x-result'}, 'exempt', 'as exempt';
is $t->get('live.both.com')->{status}, 200, 'a filed global domain plays';

# dry_run decides and logs, but lets through (a known domain: see below
# for one whose verdict is not in yet)
is $t->get('live.unfiled.cn')->{status}, 403, 'unfiled.cn is refused';
$r = $t->get('live.unfiled.cn', '/dry/index.html');
is $r->{status}, 404, 'dry_run lets an unfiled domain through (to a 404 here)';
is $r->{headers}{'x-result'}, 'dry_run', '$icp_gate_result is dry_run';
is $r->{headers}{'x-reason'}, 'unfiled', 'with the reason it would have had';
my ($dry) = grep { ($_->{uri} // '') eq '/dry/index.html' }
            $t->log_lines('reject.log');
ok $dry && $dry->{dry_run}, 'the would-be refusal is logged with dry_run true';

# dry_run never holds a request: it answers at once, and logs the would-be
# refusal when the verdict comes
$t->api_set('hang.cn', 'hang');
my $start = time;
$r = $t->get('live.hang.cn', '/dry/index.html');
my $took = time - $start;
is $r->{status}, 404, 'dry_run with a hanging filing API lets through';
ok $took < 0.05, sprintf 'at once (%.1f ms)', $took * 1000;
diag sprintf 'dry_run answer with a hanging filing API: %.1f ms', $took * 1000;
is $r->{headers}{'x-result'} // '', '', '$icp_gate_result is empty while the verdict is open';

$t->api_set('late.cn', 'unfiled', delay_ms => 700);
$start = time;
$r = $t->get('live.late.cn', '/dry/late.html');
$took = time - $start;
ok $took < 0.05 && $r->{status} == 404,
    sprintf 'dry_run with a slow filing API answers at once (%.1f ms)',
            $took * 1000;
my @late = grep { ($_->{uri} // '') eq '/dry/late.html' } $t->log_lines('reject.log');
is scalar(@late), 0, 'nothing logged before the verdict';
ok $t->wait_for(sub {
    @late = grep { ($_->{uri} // '') eq '/dry/late.html' }
            $t->log_lines('reject.log');
    @late > 0 }, 3), 'the would-be refusal is logged when the verdict comes';
is $late[0]{reason}, 'unfiled', 'with its reason';
ok $late[0]{dry_run}, 'marked dry_run';
is $late[0]{host}, 'live.late.cn', 'with the host the client sent';

$t->api_set('latefiled.cn', 'filed', delay_ms => 300);
$r = $t->get('live.latefiled.cn', '/dry/filed.html');
sleep 0.8;
is scalar(grep { ($_->{uri} // '') eq '/dry/filed.html' } $t->log_lines('reject.log')),
    0, 'a filed domain whose verdict came late is not logged';
is $t->get('live.latefiled.cn', '/dry/filed.html')->{headers}{'x-result'},
    'allow', 'and is allowed from the zone next time';

# no verdict to be had: icp_gate_on_error
$r = $t->get('live.broken.cn');
is $r->{status}, 403, 'on_error deny: a failed lookup refuses';
is $r->{headers}{'x-reason'}, 'lookup_failed', 'reason lookup_failed';
$r = $t->get('live.broken.cn', '/lenient/index.html');
is $r->{status}, 404, 'on_error allow: a failed lookup lets through';
is $r->{headers}{'x-result'}, 'allow', 'as allow';
is $r->{headers}{'x-reason'}, 'lookup_failed', 'with the reason lookup_failed';

# how a refusal looks
is $t->get('live.unfiled.cn', '/451/x')->{status}, 451, 'icp_gate_status 451';
$r = $t->get('live.unfiled.cn', '/pretty/x');
is $r->{status}, 403, 'error_page keeps the refusal status';
like $r->{body}, qr/custom refusal page/, 'error_page serves its page';
is $t->get('live.filed.cn', '/pretty/index.html')->{status}, 404,
    'a filed domain passes a location with error_page';

# satisfy any cannot skip the gate
is $t->get('live.unfiled.cn', '/satisfy/index.html')->{status}, 403,
    'satisfy any with allow 127.0.0.1 still refuses an unfiled domain';
is $t->get('live.filed.cn', '/satisfy/index.html')->{status}, 404,
    'satisfy any lets a filed domain reach the (missing) content';

# off
$r = $t->get('live.unfiled.cn', '/open/index.html');
is $r->{status}, 404, 'icp_gate off lets everything through';
is $r->{headers}{'x-result'}, undef, '$icp_gate_result is empty when off';

$t->finish;
