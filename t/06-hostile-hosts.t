# Hostile Host headers: quotes, backslashes, UTF-8 (valid and not), control
# bytes, long labels and names, as many labels as a name holds, addresses
# in disguise.  Every one is refused or served as it should be, every
# rejection log line stays valid JSON carrying the host as sent, and no
# worker dies.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1, api_default => 'unfiled',
    api => { 'filed.cn' => 'filed', 'f.cn' => 'filed', 'a.a' => 'filed' },
    conf => { http => 'large_client_header_buffers 4 16k;' });
my @workers = $t->worker_pids;

my @hosts = (
    ['quote"s.filed.cn', 403, 'invalid_host'],
    ['back\\slash.filed.cn', 403, 'invalid_host'],
    ['"},{"injected"', 403, 'invalid_host'],
    ["tab\\u0009.cn", 403, 'invalid_host'],
    ["\xe4\xbe\x8b\xe5\xad\x90.filed.cn", 200, undef],            # 例子.filed.cn
    ["\xff\xfe\xfd.cn", 403, 'invalid_host'],                      # not UTF-8
    ["\xed\xa0\x80.cn", 403, 'invalid_host'],                      # a surrogate
    ["\xc0\xae.cn", 403, 'invalid_host'],                          # overlong "."
    [('a' x 300) . '.filed.cn', 403, 'invalid_host'],
    [('a' x 63) . '.filed.cn', 200, undef],
    [join('.', ('abcdefghi') x 30) . '.cn', 403, 'invalid_host'],  # 302 bytes
    [('x' x 5000) . '.cn', 403, 'invalid_host'],
    ['xn--.cn', 403, 'invalid_host'],
    ['a..b.cn', 400, undef],                 # nginx itself refuses these
    ['%2e%2e.cn', 403, 'invalid_host'],
    ['[::ffff:127.0.0.1]', 403, 'ip_literal'],
    ['[not-v6]', 403, 'invalid_host'],
    ['filed.cn:port', 200, undef],           # nginx drops all after ":"
    ['"},{"injected":true', 403, 'invalid_host'],
    ['2130706433', 403, 'ip_literal'],
    # NUL and control bytes: nginx itself refuses them, before the gate
    ["a.filed.cn\x00.evil.cn", 400, undef],
    ["\xe4\xbe\x8b.cn\x00.filed.cn", 400, undef],
    ["a\x01b.filed.cn", 400, undef],
    ["a.filed.cn\x7f", 400, undef],
    # the wildcard rule "*.kobe.jp" does not match its parent
    ['kobe.jp', 403, 'unfiled'],
    ['x.kobe.jp', 403, 'invalid_host'],
);

for my $case (@hosts) {
    my ($host, $status, $reason) = @$case;
    my $printable = length $host > 40 ? substr($host, 0, 37) . '...' : $host;
    $printable =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;

    my $r = $t->get($host);
    is $r->{status}, $status, "Host $printable: $status";
    is $r->{headers}{'x-reason'}, $reason, "Host $printable: reason "
        . ($reason // 'none') if $status == 403;
}

# as many labels as 253 bytes hold: 126 under a filed domain, 127 of "a"
for my $case ([join('.', ('a') x 124, 'f', 'cn'), 'f.cn'],
              [join('.', ('a') x 127), 'a.a'])
{
    my ($host, $domain) = @$case;
    my $r = $t->get($host);
    my $labels = 1 + ($host =~ tr/.//);
    is $r->{status}, 200, "$labels labels, " . length($host) . " bytes: 200";
    is $r->{headers}{'x-domain'}, $domain, "$labels labels: domain $domain";
}

is_deeply [$t->worker_pids], \@workers, 'every worker is alive';

# the log: valid JSON, one line a refusal, hosts written as they came
my @lines = $t->log_lines('reject.log');
my $refused = grep { $_->[1] == 403 } @hosts;
is scalar(@lines), $refused, 'one log line for each refusal';
is scalar(grep { $_->{__invalid} } @lines), 0, 'every log line is valid JSON';
ok !(grep { exists $_->{injected} } @lines), 'no host injected a field';

my $log = $t->read_file('reject.log');
ok !($log =~ /[\x00-\x1f](?<!\n)/), 'no raw control character in the log';
is scalar(() = $log =~ /\n/g), $refused, 'no host broke a line';

my ($quote) = grep { $_->{host} =~ /^quote/ } @lines;
is $quote->{host}, 'quote"s.filed.cn', 'a quote survives the round trip';
my ($inject) = grep { $_->{host} =~ /injected/ } @lines;
is $inject->{host}, '"},{"injected"', 'an injection attempt is a plain string';
my ($bytes) = grep { $_->{host} =~ /^\x{ff}/ } @lines;
is $bytes->{host}, "\x{ff}\x{fe}\x{fd}.cn", 'bytes that are not UTF-8 are written as \\u00XX';

# IPv4 in the forms the WHATWG URL parser takes: refused without a lookup
my $asked = $t->api_total;
for my $host ('0x7f.0x0.0x0.0x1', '0x7f000001', '017700000001', '127.1',
              '1.0x2', 'a.0X')
{
    my $r = $t->get($host);
    is $r->{status}, 403, "Host $host: 403";
    is $r->{headers}{'x-reason'}, 'ip_literal', "Host $host: ip_literal";
    is $r->{headers}{'x-result'}, 'deny', "Host $host: deny";
}
is $t->api_total, $asked, 'no filing API request for an address';

$t->finish;
