# A fleet of 10 on this machine: bench/fleet.py (which `make fleet` runs
# with 50 nodes) with small numbers.  Ten nginx of one worker, each naming
# the master through three sentinels (quorum 2), a replica, the filing API
# stand-in.  A cold storm over every node costs the API one request a
# domain; an operator's revocation reaches every node, and live RTMP
# publishers on three of them; at rest each node holds one connection to
# Redis (the invalidation channel), at peak no more than 2 × workers + 1;
# the master SIGKILLed under load refuses no cached domain, and every node
# writes to the new master.  Bounds leave room for a loaded 2-core machine
# (the goals of `make fleet`: p99 < 100 ms for a revocation).

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use POSIX ();
use IcpGate::Test;

my ($sentinel) = grep { system('sh', '-c', "command -v $_ >/dev/null") == 0 }
                 qw(redis-sentinel redis-server);
plan skip_all => 'no redis-sentinel or redis-server' unless $sentinel;

my $nodes = 10;
my $t = IcpGate::Test->new;
my $json = $t->dir . '/fleet.json';
my @cmd = ($ENV{ICP_GATE_PYTHON} // 'python3', $t->repo . '/bench/fleet.py',
           '--nginx', $t->nginx_bin, '--nodes', $nodes, '--storm-domains', 5,
           '--revocations', 20, '--rtmp-nodes', 3, '--rtmp-rounds', 2,
           '--out', $t->dir . '/fleet.md', '--json', $json);

# the phases (stderr) to the TAP's notes, the report (stdout, and --out)
# to its diagnostics; the script stops what it started on a SIGTERM, which
# this test sends it if it ends first
my $pid = open(my $out, '-|') // die "cannot fork: $!";
if ($pid == 0) {
    open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
    open STDOUT, '>', '/dev/null' or POSIX::_exit(127);
    exec @cmd or POSIX::_exit(127);
}
END { if ($pid && kill 0, $pid) { kill 'TERM', $pid; waitpid $pid, 0 } }
my @said = <$out>;
close $out;
my $status = $? >> 8;
undef $pid;
note @said;
ok $status < 2, 'the fleet ran' or diag "exit status $status\n", @said;

my $g = eval { JSON::PP->new->decode($t->read_file('fleet.json') // '') };
ok $g && !$g->{error}, 'its figures were written'
    or BAIL_OUT('no figures: ' . ($g ? $g->{error} : $@));
diag $t->read_file('fleet.md') // '';

my $s = $g->{storm};
is $s->{ok}, $s->{requests}, "a cold storm of $s->{domains} domains × $nodes nodes let in";
is $s->{api_requests_max_a_domain}, 1, 'one filing API request a domain, for the fleet';
is $s->{api_requests}, $s->{domains}, 'and one for each domain';

my $r = $g->{revocation};
is $r->{never}, 0, 'every revocation reached every node';
is $r->{refusals}, 20 * $nodes, "$r->{refusals} refusals timed";
cmp_ok $r->{p99_ms}, '<', 500,
    "revocation to refusal: p50 $r->{p50_ms} ms, p99 $r->{p99_ms} ms";

my $v = $g->{rtmp};
ok $v->{sessions} == 6 && $v->{dropped} == 6,
    "$v->{dropped} of $v->{sessions} live publishers dropped";
cmp_ok $v->{max_ms} // 1e9, '<', 2000, "within 2 s (max $v->{max_ms} ms)";
like "@{ $v->{told} // [] }", qr/^NetStream\.Publish\.\S+ icp_gate: publish refused for stream\d\.cn: revoked/,
    'each was told why';

my ($rest, $peak) = @$g{qw(rest peak)};
cmp_ok $rest->{redis}{max}, '<=', 3, 'at rest: at most 3 connections to Redis a node';
is $rest->{redis}{total}, $nodes, 'one a node, the invalidation channel';
cmp_ok $peak->{redis}{max}, '<=', 3, 'at peak: at most 2 × workers + 1 a node';

my $f = $g->{failover};
cmp_ok $f->{requests}, '>', 0, "$f->{requests} requests of cached domains across the failover";
is $f->{refused}, 0, "none refused ($f->{during} between the kill and the first write)";
is $f->{nodes_writing}, $nodes, 'every node writes to the new master';
ok defined $f->{switch_s}, "the sentinels named the replica $f->{switch_s} s after the kill";

is_deeply $g->{crashes}, {}, 'no crash or sanitizer report on any node';
done_testing;
