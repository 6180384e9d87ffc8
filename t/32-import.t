# icp-gate-import: verdicts a platform knows, written to Redis under the
# key the gate looks up (IDN and subdomains reduced by the gate's own code),
# obeyed by nginx without a filing API request; invalid lines explained and
# skipped; --dry-run writes nothing; --ttl and --prefix.  The importer never
# weakens a verdict: lines that conflict for one domain give it the most
# restrictive verdict, in any order and across files, and are reported
# (--strict refuses them); a --ttl Redis cannot take is refused before
# anything is written; a line is read whole, and a NUL refuses it.

use v5.36;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes ();
use File::Basename qw(dirname);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1,
    api_default => 'filed',
    conf => { main => 'icp_gate_redis_prefix "imp:";' });

my $import = dirname($t->nginx_bin) . '/icp-gate-import';
plan skip_all => "no $import next to the nginx under test" unless -x $import;

# Each [name, text] written under DIR (no text: no file), the importer run
# on them: (exit code, stdout, stderr)
sub run_files($t, $files, @args) {
    my @paths;
    for my $file (@$files) {
        my ($name, $text) = @$file;
        my $path = $t->dir . "/$name";
        if (defined $text) {
            open my $fh, '>:utf8', $path or die "$path: $!";
            print $fh $text;
            close $fh;
        }
        push @paths, "'$path'";
    }
    my $out = $t->dir . '/import.out';
    my $err = $t->dir . '/import.err';
    system("'$import' -r 127.0.0.1:" . $t->redis_port . " @args @paths"
           . " > '$out' 2> '$err'");
    my ($o, $e) = map { my $s = $t->read_file($_) // ''; utf8::decode($s); $s }
                  $out, $err;
    return ($? >> 8, $o, $e);
}

sub run_import($t, $input, @args) {
    return run_files($t, [['input-' . int(rand 1e9), $input]], @args);
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
like $out, qr/12 lines: 6 domains written \(source import, no expiry\), 2 of them under their registrable domain, not the host given; 0 domains with conflicting lines \(the most restrictive kept\); 6 lines skipped; 0 refused by Redis/,
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

# a file that cannot be read after one that was: nothing is written, for
# the missing file might hold a more restrictive line for any domain
($code, $out, $err) = run_files($t, [['before-missing.csv', "before-missing.cn,revoked\n"],
                                     ['no-such.csv']], '--prefix', 'imp:');
is $code, 2, 'a file that cannot be opened: exit 2';
is $t->redis(qw(EXISTS imp:domain:before-missing.cn)), 0,
    'nothing is written, not even the lines of the file before it';
like $err, qr/no-such\.csv: No such file or directory; nothing written/, 'saying so';
like $out, qr/0 domains written/, 'and counting none';

# conflicting lines for one registrable domain: the most restrictive wins
# whatever their order, the conflict reported with both line numbers
for my $order (['shop.brand-a.cn,revoked,R-1', 'www.brand-a.cn,filed,F-1'],
               ['www.brand-b.cn,filed,F-1', 'shop.brand-b.cn,revoked,R-1']) {
    my ($first, $second) = @$order;
    my ($domain) = $first =~ /\.(brand-.)\.cn/;
    ($code, $out, $err) = run_import($t, "$first\n$second\n", '--prefix', 'imp:');
    is $code, 1, "$domain: conflicting lines exit 1";
    is_deeply [$t->redis('HMGET', "imp:domain:$domain.cn", qw(status icp))],
        ['revoked', 'R-1'], "$domain: revoked wins, its number with it";
    like $err, qr/:2: conflicts with \S+:1 for $domain\.cn \((filed icp F-1 here, revoked icp R-1 there|revoked icp R-1 here, filed icp F-1 there)\): kept \S+ line's verdict, the more restrictive/,
        "$domain: the conflict is reported with both lines";
    like $out, qr/2 lines: 1 domains written .* 1 domains with conflicting lines/,
        "$domain: one domain written, counted as conflicting";
}
is $t->get('live.brand-b.cn')->{headers}{'x-reason'}, 'revoked',
    'and nginx refuses it as revoked';

# the order of weight: a refusal before a status that lets requests in
# ("overseas" exempts any status), then revoked > pending > unfiled; of two
# as restrictive, the first
($code, $out, $err) = run_import($t, <<'EOF2', '--prefix', 'imp:');
a.order-a.cn,pending
b.order-a.cn,unfiled
c.order-a.cn,revoked,,overseas
a.order-b.cn,filed,N-1
b.order-b.cn,filed,N-2
EOF2
is $t->redis(qw(HGET imp:domain:order-a.cn status)), 'pending',
    'pending outweighs unfiled, and any refusal a status in region overseas';
is $t->redis(qw(HGET imp:domain:order-a.cn region)), '',
    'the region goes with the line kept';
is $t->redis(qw(HGET imp:domain:order-b.cn icp)), 'N-1',
    'two filed lines with different numbers: the first is kept';
like $err, qr/:5: conflicts with \S+:4 for order-b\.cn \(filed icp N-2 here, filed icp N-1 there\): kept that line's verdict, the first of two as restrictive/,
    'and the conflict reported';
like $out, qr/2 domains with conflicting lines/, 'two domains conflicted';

# across files: the later file does not make a revoked domain filed
($code, $out, $err) = run_files($t, [['part-1.csv', "x.across.cn,revoked\n"],
                                     ['part-2.csv', "y.across.cn,filed\n"]],
                                '--prefix', 'imp:');
is $t->redis(qw(HGET imp:domain:across.cn status)), 'revoked',
    'a revoked line in one file outweighs a filed one in the next';
like $err, qr/part-2\.csv:1: conflicts with \S*part-1\.csv:1 for across\.cn/,
    'the conflict names both files';

# the same verdict twice is no conflict
($code, $out, $err) = run_import($t, "a.twice.cn,filed,T-1\nb.twice.cn,filed,T-1\n",
                                 '--prefix', 'imp:');
is $code, 0, 'the same verdict on two lines: exit 0';
like $out, qr/2 lines: 1 domains written.*0 domains with conflicting/, 'one domain, no conflict';

# --strict: conflicting lines refuse the import, nothing written
($code, $out, $err) = run_import($t, "strict-a.cn,filed\nstrict-b.cn,revoked\nwww.strict-b.cn,filed\n",
                                 '--prefix', 'imp:', '--strict');
is $code, 2, '--strict with conflicting lines exits 2';
like $err, qr/1 domains have conflicting lines: nothing written \(--strict\)/,
    'saying why';
is $t->redis(qw(EXISTS imp:domain:strict-a.cn)), 0, 'and writes nothing';
is $t->redis(qw(EXISTS imp:domain:strict-b.cn)), 0, 'not even the domain in conflict';

# a --ttl Redis's EXPIRE would refuse: refused before Redis is touched
$t->redis(qw(HSET imp:domain:ttl-op.cn status revoked source manual));
($code, $out, $err) = run_import($t, "ttl-op.cn,filed\n", '--prefix', 'imp:',
                                 '--ttl', '9223372036854775');
is $code, 2, 'a --ttl Redis cannot take exits 2';
like $err, qr/--ttl "9223372036854775": expected seconds, 0 \(no expiry\) to 4611686018427387/,
    'saying what it takes';
is $t->redis(qw(HGET imp:domain:ttl-op.cn status)), 'revoked',
    "an operator's revoked hash stays revoked";
is $t->redis(qw(TTL imp:domain:ttl-op.cn)), -1, 'and keeps no expiry';
($code, $out, $err) = run_import($t, "ttl-max.cn,filed\n", '--prefix', 'imp:',
                                 '--ttl', '4611686018427387');
is $code, 0, 'the longest --ttl is taken by Redis';
cmp_ok $t->redis(qw(TTL imp:domain:ttl-max.cn)), '>', 4611686000000000,
    'and set';

# a line is read whole: a NUL inside a long line refuses that line, and its
# tail is no record of its own; the line after one too long is read
my $long = "x.cn,filed\0" . ('A' x 4084) . "tail.cn,revoked";
my $huge = "y.cn,filed," . ('B' x 70000) . "\0";
($code, $out, $err) = run_import($t, "$long\nnul-ok.cn,filed\nnul\0short.cn,filed\n"
                                     . "$huge\nafter-huge.cn,filed\n", '--prefix', 'imp:');
is $code, 1, 'lines with a NUL: exit 1';
like $out, qr/5 lines: 2 domains written.* 3 lines skipped/,
    'five lines, three of them skipped, two domains written';
like $err, qr/:1: skipped .*: a NUL byte/, 'the long line is refused for its NUL';
like $err, qr/:3: skipped .*: a NUL byte/, 'so is a short one';
like $err, qr/:4: skipped "y\.cn,filed,B+\.\.\.": longer than 65535 bytes/,
    'a line too long to read is refused whole';
is $t->redis(qw(EXISTS imp:domain:tail.cn)), 0, 'the tail of a line wrote nothing';
is $t->redis(qw(EXISTS imp:domain:x.cn)), 0, 'nor its head';
is $t->redis(qw(HGET imp:domain:nul-ok.cn status)), 'filed', 'the next line is read';
is $t->redis(qw(HGET imp:domain:after-huge.cn status)), 'filed',
    'and the line after the one too long';

# the count of hosts written under their registrable domain: an IDN and a
# trailing dot make a host no longer, or shorter, than a subdomain
($code, $out) = run_import($t, "www.例子.cn,filed\n例子二.cn,filed\nwww.count.cn.,filed\ncount2.cn.,filed\n",
                           '--prefix', 'imp:');
like $out, qr/4 lines: 4 domains written \(source import, no expiry\), 2 of them under their registrable domain/,
    'two of four hosts were subdomains';

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

# --rate: at most N writes a second, for a fleet that hears of each
my $lines = join '', map { "paced$_.cn,filed\n" } 1 .. 60;
my $start = Time::HiRes::time();
($code, $out) = run_import($t, $lines, '--prefix', 'imp:', '--rate', '100');
my $took = Time::HiRes::time() - $start;
is $code, 0, '--rate 100: 60 lines written';
ok $took >= 0.5, sprintf 'no faster than 100 a second (%.2fs for 60)', $took;
is $t->redis(qw(HGET imp:domain:paced60.cn status)), 'filed', 'the last one too';
($code, $out, $err) = run_import($t, "x.cn,filed\n", '--rate', '0');
is $code, 2, '--rate 0 is refused';
like $err, qr/--rate "0": expected writes a second/, 'saying why';

# Redis that cannot be reached
($code, $out, $err) = run_import($t, "x.cn,filed\n", '-r', '127.0.0.1:1');
is $code, 2, 'no Redis: exit 2';
like $err, qr/icp-gate-import: redis 127\.0\.0\.1:1: /, 'saying so';

$t->finish;
