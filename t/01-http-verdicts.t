# Every verdict the filing API can give, the host checks that come before
# any lookup, the public suffix list, and what reaches Redis and the log.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed', 'pending.cn' => 'pending',
             'revoked.cn' => 'revoked', 'unfiled.cn' => 'unfiled',
             'example.com.cn' => 'filed',
             'xn--fsqu00a.xn--fiqs8s' => 'filed' },    # 例子.中国
    conf => { main => 'icp_gate_ttl 1h; icp_gate_negative_ttl 10m;'
                    . ' icp_gate_api_header X-Api-Key "sekrit";' });

# filed, and the variables that say why
my $r = $t->get('live.filed.cn');
is $r->{status}, 200, 'a subdomain of a filed domain plays';
is $r->{headers}{'x-result'}, 'allow', '$icp_gate_result is allow';
is $r->{headers}{'x-domain'}, 'filed.cn',
    '$icp_gate_domain is the registrable domain';
is $r->{headers}{'x-reason'}, undef,
    '$icp_gate_reason is empty when allowed (add_header skips it)';
is $r->{headers}{'x-icp'}, '京ICP备12345678号-1',
    '$icp_gate_icp carries the filing number';
like $r->{body}, qr/content of index.html/, 'the content is served';

is $t->get('LIVE.Filed.CN:8080')->{status}, 200, 'case and port do not matter';
is $t->get('play.filed.cn.')->{status}, 200, 'a trailing dot does not matter';

# refusals by verdict
for my $case (['pending.cn', 'pending'], ['revoked.cn', 'revoked'],
              ['unfiled.cn', 'unfiled'], ['nobody.cn', 'unfiled'])
{
    my ($domain, $reason) = @$case;
    my $r = $t->get("push.$domain");
    is $r->{status}, 403, "$domain is refused";
    is $r->{headers}{'x-reason'}, $reason, "$domain: reason $reason";
    is $r->{headers}{'x-result'}, 'deny', "$domain: result deny";
}

# the public suffix list decides the registrable domain
$r = $t->get('a.b.example.com.cn');
is $r->{status}, 200, 'a.b.example.com.cn plays on the filing of example.com.cn';
is $r->{headers}{'x-domain'}, 'example.com.cn',
    'registrable domain of a.b.example.com.cn';
is $t->api_count('com.cn'), 0, 'the public suffix com.cn was never asked about';

$r = $t->get('com.cn');
is $r->{status}, 403, 'a bare public suffix is refused';
is $r->{headers}{'x-reason'}, 'invalid_host',
    'a bare public suffix is an invalid host';

# internationalised names are looked up in their punycode form; from
# 1.29.4 nginx itself refuses a Host that is not RFC 3986's (raw UTF-8)
# with 400, before any phase handler: a refusal, not the gate's
$r = $t->get('直播.例子.中国');
if ($t->nginx_version >= 1029004) {
    is $r->{status}, 400, 'nginx >= 1.29.4 refuses a raw UTF-8 host itself';
    $r = $t->get('xn--fsqu00a.xn--fiqs8s');
    is $r->{status}, 200, 'its punycode form plays';
} else {
    is $r->{status}, 200, 'a UTF-8 host on a filed IDN domain plays';
}
is $r->{headers}{'x-domain'}, 'xn--fsqu00a.xn--fiqs8s', 'IDN domain in punycode';

# refusals before any lookup
for my $case (['127.0.0.1', 'ip_literal'], ['[::1]:80', 'ip_literal'],
              ['10.0.0.1:8080', 'ip_literal'], ['0x7f.0.0.1', 'ip_literal'],
              ['bad_name.cn', 'invalid_host'], ['-lead.cn', 'invalid_host'],
              ['localhost', 'invalid_host'])
{
    my ($host, $reason) = @$case;
    my $r = $t->get($host);
    is $r->{status}, 403, "host $host is refused";
    is $r->{headers}{'x-reason'}, $reason, "host $host: $reason";
}

$r = $t->http(path => '/index.html', version => 'HTTP/1.0');
is $r->{status}, 403, 'a request without Host is refused';
is $r->{headers}{'x-reason'}, 'no_host', 'no Host: reason no_host';

# the filing API: one request per domain, with our headers
is $t->api_count('filed.cn'), 1, 'filed.cn was asked about once for four requests';
is $t->api_count('nobody.cn'), 1, 'nobody.cn (404) was asked about once';

$t->api_set('bigpage.cn', '404page');
$r = $t->get('live.bigpage.cn');
is $r->{status}, 403, 'a 404 with a long page: refused';
is $r->{headers}{'x-reason'}, 'unfiled', 'as unfiled, not as a failed lookup';
my $h = $t->api_headers('filed.cn');
is $h->{accept}, 'application/json', 'the API request accepts JSON';
is $h->{'x-api-key'}, 'sekrit', 'icp_gate_api_header is sent';

# what reached Redis
my %hash = $t->redis('HGETALL', 'icp:domain:filed.cn');
is $hash{status}, 'filed', 'Redis: status of filed.cn';
is $hash{source}, 'api', 'Redis: source api';
is $hash{icp}, '京ICP备12345678号-1', 'Redis: filing number';
ok abs($hash{checked_at} - time) < 60, 'Redis: checked_at is now';
my $ttl = $t->redis('TTL', 'icp:domain:filed.cn');
ok $ttl > 3500 && $ttl <= 3600,
    "Redis: a filed verdict expires after icp_gate_ttl ($ttl)";

$ttl = $t->redis('TTL', 'icp:domain:nobody.cn');
ok $ttl > 500 && $ttl <= 600,
    "Redis: an unfiled verdict expires after icp_gate_negative_ttl ($ttl)";
is $t->redis('HGET', 'icp:domain:nobody.cn', 'status'), 'unfiled',
    'Redis: a 404 is stored as unfiled';
is $t->redis('HGET', 'icp:domain:revoked.cn', 'status'), 'revoked',
    'Redis: revoked stored';

# the rejection log: one valid JSON line per refusal
my @lines = $t->log_lines('reject.log');
my @invalid = grep { $_->{__invalid} } @lines;
is scalar @invalid, 0, 'every rejection log line is valid JSON';
my ($line) = grep { ($_->{host} // '') eq 'push.revoked.cn' } @lines;
ok $line, 'the refusal of push.revoked.cn is logged';
is $line->{$_->[0]}, $_->[1], "log field $_->[0]" for
    ['proto', 'http'], ['action', 'request'], ['domain', 'revoked.cn'],
    ['reason', 'revoked'], ['client', '127.0.0.1'], ['method', 'GET'],
    ['uri', '/index.html'], ['status', 403];
ok defined $line->{dry_run} && !$line->{dry_run}, 'log field dry_run is false';
like $line->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/,
    'log field time is ISO 8601 with milliseconds';
is scalar(@lines), 14, 'one line for each of the 14 refusals';

$t->finish;
