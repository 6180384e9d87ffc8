# icp-gate-import: verdicts a platform knows, written to Redis under the
# key the gate looks up (IDN and subdomains reduced by the gate's own code),
# obeyed by nginx without a filing API request; invalid lines explained and
# skipped; --dry-run writes nothing; --ttl and --prefix.

use v5.36;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Basename qw(dirname);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1,
    api_default => 'filed',
    conf => { main => 'icp_gate_redis_prefix "imp:";' });

my $import = dirname($t->nginx_bin) . '/icp-gate-import';
plan skip_all => "no $import next to the nginx under test" unless -x $import;

# (exit code, stdout, stderr)
sub run_import($t, $input, @args) {
    my $in = $t->dir . '/input-' . int(rand 1e9);
    open my $fh, '>:utf8', $in or die "$in: $!";
    print $fh $input;
    close $fh;
    my $out = $t->dir . '/import.out';
    my $err = $t->dir . '/import.err';
    system("'$import' -r 127.0.0.1:" . $t->redis_port . " @args '$in'"
           . " > '$out' 2> '$err'");
    my ($o, $e) = map { my $s = $t->read_file($_) // ''; utf8::decode($s); $s }
                  $out, $err;
    return ($? >> 8, $o, $e);
}

my $csv = <<'EOF';
domain,status,icp,region
# the platform's records
live.filed-a.cn,filed,京ICP备00000001号-1
filed-b.com.cn , filed , "ICP ""B"", 2" , mainland
直播.例子.中国,filed
PENDING-C.CN,pending
revoked-d.cn,revoked
intl-e.com,unfiled,,overseas

1.2.3.4,filed
com.cn,filed
bad-f.cn,maybe
bad-g.cn,filed,,mars
bad-h.cn,filed,a,b,c
"open.cn,filed
EOF

# --dry-run: everything checked, nothing written
my ($code, $out, $err) = run_import($t, $csv, '--prefix', 'imp:', '--dry-run');
is $code, 1, '--dry-run with invalid lines exits 1';
like $out, qr/12 lines: 6 domains checked, nothing written/, 'it counts what it would write';
is $t->redis(qw(DBSIZE)), 0, 'and writes nothing';

($code, $out, $err) = run_import($t, $csv, '--prefix', 'imp:');
is $code, 1, 'an import with invalid lines exits 1';
like $out, qr/12 lines: 6 domains written \(source import, no expiry\), 2 of them under their registrable domain, not the host given; 6 lines skipped; 0 refused by Redis/,
    'it reports what it wrote and skipped';
like $err, qr/:10: skipped "1\.2\.3\.4,filed": an IP address, not a domain/,
    'an IP address is explained, with its line';
like $err, qr/:11: skipped "com\.cn,filed": not a domain the gate can look up/,
    'a public suffix is explained';
like $err, qr/:12: skipped "bad-f\.cn,maybe": status is none of/, 'a bad status';
like $err, qr/:13: skipped .*: region is none of/, 'a bad region';
like $err, qr/:14: skipped .*: more than four fields/, 'too many fields';
like $err, qr/:15: skipped .*: a quoted field is not closed/, 'an open quote';

# the hashes, under the gate's keys
my %h = $t->redis(qw(HGETALL imp:domain:filed-a.cn));
utf8::decode($_) for values %h;
is_deeply [@h{qw(status source icp)}],
    ['filed', 'import', '京ICP备00000001号-1'],
    'a subdomain is written under its registrable domain, with its number';
is $t->redis(qw(HGET imp:domain:filed-b.com.cn icp)), 'ICP "B", 2',
    'a quoted field keeps its commas and quotes';
is $t->redis(qw(HGET imp:domain:xn--fsqu00a.xn--fiqs8s status)), 'filed',
    'an IDN is written in punycode, as the gate looks it up';
is $t->redis(qw(HGET imp:domain:pending-c.cn status)), 'pending',
    'upper case is folded';
is $t->redis(qw(TTL imp:domain:revoked-d.cn)), -1, 'no expiry unless asked';

# nginx obeys them without asking the filing API
is $t->get('play.filed-a.cn')->{status}, 200, 'an imported filed domain plays';
is $t->get('直播.例子.中国')->{status}, 200, 'so does the IDN';
is $t->get('x.pending-c.cn')->{headers}{'x-reason'}, 'pending',
    'an imported pending domain is refused as pending';
is $t->get('revoked-d.cn')->{headers}{'x-reason'}, 'revoked',
    'a revoked one as revoked';
is $t->get('www.intl-e.com')->{headers}{'x-result'}, 'exempt',
    'an unfiled overseas one is exempt';
is $t->api_total, 0, 'the filing API was never asked';

# JSON lines, and a TTL
my $jsonl = <<'EOF';
{"domain": "json-a.cn", "status": "filed", "icp": "J-1"}
{"domain": "live.json-b.cn", "status": "revoked", "region": null}
{"domain": 5, "status": "filed"}
["json-c.cn", "filed"]
{"domain": "json-d.cn"
EOF
($code, $out, $err) = run_import($t, $jsonl, '--prefix', 'imp:', '--ttl', 3600);
is $code, 1, 'JSON lines with invalid ones exit 1';
like $out, qr/5 lines: 2 domains written \(source import, expiring in 3600 s\)/,
    'JSON lines are read, the TTL reported';
like $err, qr/:3: skipped .*"domain" is not a string/, 'a non-string domain is explained';
like $err, qr/:4: skipped .*not a JSON object/, 'an array is explained';
like $err, qr/:5: skipped .*not JSON/, 'broken JSON is explained';
is $t->redis(qw(HGET imp:domain:json-b.cn status)), 'revoked', 'JSON lines are written';
my $ttl = $t->redis(qw(TTL imp:domain:json-a.cn));
ok $ttl > 3500 && $ttl <= 3600, "--ttl sets the hash's expiry ($ttl)";

# a clean import exits 0; an import replaces the whole hash
($code, $out) = run_import($t, "json-a.cn,unfiled\n", '--prefix', 'imp:');
is $code, 0, 'a clean import exits 0';
is $t->redis(qw(HGET imp:domain:json-a.cn icp)), '', 'a new import replaces the old hash, number included';
is $t->redis(qw(TTL imp:domain:json-a.cn)), -1, 'and its expiry';

# more lines than one pipelined batch (2 000): every one written, and
# counted once Redis has answered
my $many = join '', map { "batch$_.cn,filed\n" } 1 .. 2001;
($code, $out) = run_import($t, $many, '--prefix', 'imp:');
is $code, 0, 'an import longer than one batch exits 0';
like $out, qr/2001 lines: 2001 domains written/, 'and counts every domain';
is $t->redis(qw(HGET imp:domain:batch2001.cn status)), 'filed',
    'the last batch is written too';

# a file that cannot be read after one that was: what was read is written
{
    my $in = $t->dir . '/before-missing.csv';
    open my $fh, '>', $in or die "$in: $!";
    print $fh "before-missing.cn,revoked\n";
    close $fh;
    system("'$import' -r 127.0.0.1:" . $t->redis_port . " --prefix imp: '$in'"
           . " '" . $t->dir . "/no-such.csv' > '" . $t->dir . "/m.out' 2>&1");
    is $? >> 8, 2, 'a file that cannot be opened: exit 2';
    is $t->redis(qw(HGET imp:domain:before-missing.cn status)), 'revoked',
        'the lines of the file before it are written all the same';
    like $t->read_file($t->dir . '/m.out'),
        qr/no-such\.csv: No such file.*1 domains written/s,
        'and counted as written';
}

# a Redis that refuses writes (no replica for min-replicas-to-write)
$t->redis(qw(CONFIG SET min-replicas-to-write 1));
($code, $out, $err) = run_import($t, "refused-a.cn,filed\nrefused-b.cn,filed\n",
                                 '--prefix', 'imp:');
$t->redis(qw(CONFIG SET min-replicas-to-write 0));
is $code, 2, 'writes Redis refuses: exit 2';
like $out, qr/2 lines: 0 domains written.*2 refused by Redis/,
    'none counted as written, both as refused';
like $err, qr/redis refused a write: NOREPLICAS/, 'the first refusal explained';
is $t->redis(qw(EXISTS imp:domain:refused-a.cn)), 0, 'and nothing written';

# Redis that cannot be reached
($code, $out, $err) = run_import($t, "x.cn,filed\n", '-r', '127.0.0.1:1');
is $code, 2, 'no Redis: exit 2';
like $err, qr/icp-gate-import: redis 127\.0\.0\.1:1: /, 'saying so';

$t->finish;
