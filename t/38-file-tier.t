# icp_gate_file: a platform's own list of filed domains, in the importer's
# formats.  Without Redis and the filing API it is the whole truth; with
# them it is the first tier: a listed domain is never asked of the API,
# and only a newer verdict of an operator or an import in Redis outweighs
# it.  Bad lines are logged with their numbers and the file still loads; a
# file that cannot be read fails the configuration.  A reload takes the
# new file at once, for the domains the zone already holds too, and a
# reload of the same file drops nothing.

use v5.36;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep);
use IcpGate::Test;

my $ops = $IcpGate::Conf::ADMIN_SERVER;

sub write_list($t, $name, $text, $mtime = undef) {
    my $path = $t->dir . "/$name";
    open my $fh, '>:utf8', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    utime $mtime, $mtime, $path if defined $mtime;
    return $path;
}

sub zone($t, $domain) {
    my $r = $t->http(port => $t->port('ops'), host => 'ops',
                     path => "/icp_gate/admin?domain=$domain");
    return decode_json($r->{body})->{zone};
}

sub reason($t, $host) { $t->get($host)->{headers}{'x-reason'} }

# ---------------------------------------------------------------- alone

my $t = IcpGate::Test->gated(
    redis => 0, nginx => 0,
    conf => { redis => '', api => '',
              main => 'icp_gate_file filed.csv;', servers => $ops });

write_list($t, 'filed.csv', <<'EOF');
domain,status,icp,region
# the platform's own records, CSV and JSON lines alike
live.filed-a.cn,filed,京ICP备00000001号-1
filed-b.com.cn,filed
{"domain": "filed-c.cn", "status": "filed", "icp": "JSON-1"}
revoked-d.cn,revoked
{"domain": "pending-e.cn", "status": "pending"}
unfiled-f.cn,unfiled
intl-g.com,unfiled,,overseas
1.2.3.4,filed
bad-h.cn,maybe
{"domain": "bad-i.cn"
twice-j.cn,filed
www.twice-j.cn,revoked
EOF

my ($code, $out) = $t->nginx_test;
is $code, 0, 'nginx -t takes a file with bad lines';
like $out, qr/\[warn\] .*icp_gate: "[^"]*filed\.csv" line 10: an IP address, not a domain, skipped/,
    'nginx -t names each bad line with its number';
like $out, qr/line 11: status is none of filed, pending, revoked, unfiled, skipped/,
    'and says why';
like $out, qr/line 12: not JSON, skipped/, 'a broken JSON line too';
like $out, qr/"[^"]*filed\.csv" line 14 conflicts with line 13 for "twice-j\.cn": revoked kept/,
    'lines that conflict are named';
like $out, qr/: 8 domains from 12 lines, 3 lines skipped, 1 domains with conflicting lines/,
    'and the file is summed up';

$t->start_nginx;

my $r = $t->get('live.filed-a.cn');
is $r->{status}, 200, 'a domain the file files is let in';
is $r->{headers}{'x-icp'}, do { my $n = '京ICP备00000001号-1'; utf8::encode($n); $n },
    'with its filing number';
is $t->get('cdn.filed-b.com.cn')->{status}, 200,
    'a subdomain of a filed domain too';
is $t->get('filed-c.cn')->{headers}{'x-icp'}, 'JSON-1', 'a JSON line files too';
$r = $t->get('live.revoked-d.cn');
is $r->{status}, 403, 'a domain the file revokes is refused';
is $r->{headers}{'x-reason'}, 'revoked', 'as revoked';
is reason($t, 'pending-e.cn'), 'pending', 'pending, as the file says';
is reason($t, 'unfiled-f.cn'), 'unfiled', 'unfiled, as the file says';
is $t->get('intl-g.com')->{headers}{'x-result'}, 'exempt',
    'overseas in the file is exempt';
is reason($t, 'absent.cn'), 'unfiled', 'a domain the file does not list is unfiled';
is reason($t, 'bad-h.cn'), 'unfiled', 'so is one only a bad line names';
is reason($t, 'twice-j.cn'), 'revoked', 'of conflicting lines the most restrictive';
like $t->read_file($t->dir . '/nginx.stderr'),
    qr/\[warn\] icp_gate: "[^"]*filed\.csv" line 11: status is none/,
    'nginx says so when it starts';

my $z = zone($t, 'filed-a.cn');
is $z->{source}, 'file', 'the console names the file as the source';
is $z->{status}, 'filed', 'with its verdict';

# a reload with a changed file: what the zone holds follows at once
$t->get('pending-e.cn');
write_list($t, 'filed.csv', <<'EOF');
live.filed-a.cn,revoked
filed-b.com.cn,filed
filed-c.cn,filed,JSON-1
revoked-d.cn,revoked
new-m.cn,filed
EOF
is $t->get('new-m.cn')->{status}, 403, 'before the reload a new domain is unfiled';
ok $t->reload, 'reloaded with the changed file';
$r = $t->get('live.filed-a.cn');
is $r->{headers}{'x-reason'}, 'revoked',
    'a cached domain the new file revokes is refused at once';
is $t->get('new-m.cn')->{status}, 200,
    'a cached domain the new file adds is let in at once';
is reason($t, 'pending-e.cn'), 'unfiled',
    'a cached domain the new file no longer lists is unfiled at once';
is $t->get('filed-c.cn')->{headers}{'x-icp'}, 'JSON-1',
    'one the file kept as it was is still filed';
like $t->error_log, qr/: 6 domains changed since the last configuration/,
    'the master counts the changes (one revoked, one added, four gone)';

# the same file again: nothing dropped
my $before = zone($t, 'filed-b.com.cn');
cmp_ok $before->{fresh_for}, '>', 3600, 'a copy of the file\'s verdict is fresh';
my $changes = () = $t->error_log =~ /domains changed since/g;
sleep 1.1;
ok $t->reload, 'reloaded with the file unchanged';
my $after = zone($t, 'filed-b.com.cn');
cmp_ok $after->{fresh_for}, '>', 3600, 'the copy was not dropped';
cmp_ok $after->{fresh_for}, '<', $before->{fresh_for}, 'nor stored again';
is scalar(() = $t->error_log =~ /domains changed since/g), $changes,
    'no domain counted as changed';

# a file that cannot be read fails the configuration
write_list($t, 'nginx.conf', do {
    my $c = $t->read_file($t->dir . '/nginx.conf');
    $c =~ s/icp_gate_file filed\.csv;/icp_gate_file missing.csv;/ or die;
    $c;
});
($code, $out) = $t->nginx_test;
isnt $code, 0, 'nginx -t fails with a missing file';
like $out, qr/\[emerg\] .*icp_gate_file "[^"]*missing\.csv" cannot be opened \(2: No such file or directory\)/,
    'naming icp_gate_file and the file';
$t->stop_nginx;
$t->done_cleanly;

# ---------------------------------------------------------------- first tier

my $now = int time;
$t = IcpGate::Test->gated(
    redis => 1, api_default => 'filed', nginx => 0,
    conf => { main => 'icp_gate_file filed.csv; icp_gate_local_ttl 1s;'
                    . ' icp_gate_redis_prefix "ft:";',
              servers => $ops });

# the file was written an hour ago
write_list($t, 'filed.csv', <<'EOF', $now - 3600);
over-api.cn,revoked
op-newer.cn,filed
op-older.cn,filed
op-bare.cn,filed
import-older.cn,revoked
only-file.cn,filed,FILE-1
live-change.cn,filed
EOF

$t->redis(qw(HSET ft:domain:over-api.cn status filed source api rev 1),
          'checked_at', $now);
$t->redis(qw(HSET ft:domain:op-newer.cn status revoked source manual),
          'checked_at', $now - 60);
$t->redis(qw(HSET ft:domain:op-older.cn status revoked source manual),
          'checked_at', $now - 7200);
$t->redis(qw(HSET ft:domain:op-bare.cn status revoked source manual));
$t->redis(qw(HSET ft:domain:import-older.cn status filed source import),
          'checked_at', $now - 7200);
$t->start_nginx;

is reason($t, 'over-api.cn'), 'revoked', "the file outweighs the API's hash";
is reason($t, 'op-newer.cn'), 'revoked',
    "an operator's hash written after the file outweighs it";
is $t->get('op-older.cn')->{status}, 200,
    "an operator's hash written before the file does not";
is reason($t, 'op-bare.cn'), 'revoked',
    "an operator's hash without checked_at counts as the newer";
is $t->get('import-older.cn')->{status}, 403,
    'nor does an import older than the file';
$r = $t->get('live.only-file.cn');
is $r->{status}, 200, 'a domain only the file knows is let in';
is $r->{headers}{'x-icp'}, 'FILE-1', 'with its number';
is $t->get('other.cn')->{status}, 200, 'a domain it does not list is asked';
is $t->api_count('other.cn'), 1, 'of the filing API';
is $t->api_total, 1, 'which was asked of nothing the file lists';
is_deeply [sort grep { /only-file/ } $t->redis('KEYS', 'ft:*')], [],
    'nothing of the file is written to Redis, nor locked there';

# an operator's change in Redis reaches a domain the file lists
is $t->get('live-change.cn')->{status}, 200, 'a listed domain plays';
$t->redis(qw(HSET ft:domain:live-change.cn status revoked source manual));
ok $t->wait_for(sub { reason($t, 'live-change.cn') eq 'revoked' }, 5),
    "an operator's revocation written now reaches it";
$t->redis(qw(DEL ft:domain:live-change.cn));
ok $t->wait_for(sub { $t->get('live-change.cn')->{status} == 200 }, 5),
    'and once deleted, the file judges again';

# Redis gone: the file still judges, and the API is still not asked
$t->stop_redis;
sleep 1.2;
is $t->get('only-file.cn')->{status}, 200, 'without Redis, the file judges';
is reason($t, 'over-api.cn'), 'revoked', 'the revocation too';
is $t->get('fresh-never-seen.cn')->{status}, 200, 'others go to the API';
is $t->api_count('only-file.cn') + $t->api_count('over-api.cn'), 0,
    'never for a listed domain';

$t->finish;
