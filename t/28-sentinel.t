# Redis through Sentinel: icp_gate_redis sentinel=... master=... asks a
# sentinel where the master is, checks it with ROLE, and follows a
# failover.  A master, its replica and one sentinel (quorum 1, down after
# 1 s) run here, with three nginx instances (nodes) of two workers; the
# master is killed (SIGKILL) while requests of cached and of cold domains
# run over the nodes, the sentinel promotes the replica, and every node
# writes there within a second of the promotion.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use IcpGate::Test;
use IcpGate::Conf;

my ($sentinel_bin) = grep { system('sh', '-c', "command -v $_ >/dev/null") == 0 }
                     qw(redis-sentinel redis-server);
plan skip_all => 'no redis-sentinel or redis-server' unless $sentinel_bin;

my $t = IcpGate::Test->gated(redis => 1, api_default => 'filed', nginx => 0);
my $master_port = $t->port('redis');

my $replica = IcpGate::Test->new;
$replica->start_redis;
$replica->redis('REPLICAOF', '127.0.0.1', $master_port);
ok $t->wait_for(sub { $replica->redis(qw(INFO replication)) =~ /master_link_status:up/ }, 10),
    'the replica follows the master';

# one sentinel: quorum 1, a master down after 1 s
my $sport = $t->port('sentinel');
my $sconf = $t->dir . '/sentinel.conf';
open my $fh, '>', $sconf or die "$sconf: $!";
print $fh <<"EOF";
port $sport
bind 127.0.0.1
dir @{[ $t->dir ]}
sentinel monitor mymaster 127.0.0.1 $master_port 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
EOF
close $fh;
my $sentinel = $t->_spawn($t->dir . '/sentinel.log', $sentinel_bin, $sconf,
                          $sentinel_bin =~ /redis-server$/ ? '--sentinel' : ());
END { kill 'KILL', $sentinel if $sentinel }

sub sentinel(@args) {
    my $out = `redis-cli -p $sport --raw @args 2>/dev/null`;
    chomp $out;
    return $out;
}
ok $t->wait_for(sub { sentinel(qw(SENTINEL replicas mymaster)) =~ /flags\s+slave/ }, 15),
    'the sentinel knows the master and its replica';

# a sentinel that does not answer comes first: the next one is asked
my $dead = $t->port('dead-sentinel');
my @nodes = ($t, map { IcpGate::Test->new } 1 .. 2);
for my $node (@nodes) {
    $node->{ports}{api} = $t->port('api');
    $node->write_conf(gate_conf($node, redis =>
        "icp_gate_redis sentinel=127.0.0.1:$dead,127.0.0.1:$sport master=mymaster timeout=500ms;"));
    $node->start_nginx;
}

my @cached = map { "c$_.cn" } 1 .. 20;
is_deeply [map { my $d = $_; map { $_->get("live.$d")->{status} } @nodes } @cached],
    [(200) x 60], '20 filed domains play on the 3 nodes';
ok $t->wait_for(sub { $t->redis(qw(HGET icp:domain:c20.cn status)) eq 'filed' }),
    'their verdicts are written to the master the sentinel named';
like $t->error_log, qr/icp_gate: redis master "mymaster" is at 127\.0\.0\.1:$master_port/,
    'the master the sentinel named is logged';

# a bad configuration names the directive (a node of its own: the
# others' nginx.conf stays as it runs)
my $bad = IcpGate::Test->new;
$bad->write_conf(gate_conf($bad, redis => 'icp_gate_redis sentinel=127.0.0.1:1 timeout=1s;'));
my ($code, $out) = $bad->nginx_test;
like $out, qr/"icp_gate_redis" needs both sentinel= and master=/,
    'sentinel= without master= fails nginx -t with a message';

# load: the cached domains, and a new cold domain every tenth request
my $load_log = $t->dir . '/load.log';
my $load = fork // die;
if ($load == 0) {
    open my $out, '>', $load_log or die;
    $out->autoflush(1);
    my $end = time + 9;
    for (my $i = 0; time < $end; $i++) {
        my $domain = $i % 10 == 9 ? "cold$i.cn" : $cached[$i % 20];
        my $r = $nodes[$i % 3]->get("live.$domain", '/index.html', timeout => 5);
        printf $out "%.3f %d %s\n", time, $r->{status}, $domain;
    }
    POSIX::_exit(0);
}

sub execs($node) {
    my ($line) = grep { /^cmdstat_exec:/ } $node->redis(qw(INFO commandstats));
    return $line && $line =~ /calls=(\d+)/ ? $1 : 0;
}

sleep 1;
my $before = execs($replica);
my $killed = time;
kill 'KILL', $t->redis_pid;

# The failover's end: the sentinel names the replica (it announces
# +switch-master then, up to a second after the replica took the role).
# From the promotion on, each node is asked about a new domain at a time,
# until its verdict is seen in the new master.
my $replica_port = $replica->port('redis');
my ($promoted, $switched, $written, %probe, @resumed);
$t->wait_for(sub {
    $promoted //= time if ($replica->redis('ROLE'))[0] eq 'master';
    return 0 unless $promoted;
    $switched //= time
        if sentinel(qw(SENTINEL get-master-addr-by-name mymaster)) =~ /\b$replica_port\b/;
    $written //= time if execs($replica) > $before;
    for my $k (0 .. 2) {
        next if defined $resumed[$k];
        my $p = $probe{$k};
        if ($p && $replica->redis('HGET', "icp:domain:$p", 'status') eq 'filed') {
            $resumed[$k] = time;
            next;
        }
        $probe{$k} = "after$k-" . int(rand 1e9) . '.cn';
        $nodes[$k]->get("live.$probe{$k}", '/index.html', timeout => 2);
    }
    $switched && 3 == grep { defined } @resumed;
}, 20);
@resumed = map { defined ? $_ - ($switched // $promoted) : undef } @resumed;
waitpid $load, 0;

ok $promoted, sprintf 'the sentinel promoted the replica (%.1fs after the kill)',
    ($promoted // time) - $killed;
ok $written && $written - $promoted < 1,
    sprintf 'a node wrote to the new master %.2fs after the promotion',
            ($written // time) - ($promoted // time);

ok $switched, sprintf 'the sentinel names the new master (%.1fs after the kill)',
    ($switched // time) - $killed;
is scalar(grep { defined && $_ < 1 } @resumed), 3,
    sprintf 'every node writes to the new master within 1 s of the failover\'s '
    . 'end (%s)', join ', ', map { defined ? sprintf('%.2fs', $_) : 'never' } @resumed;
diag sprintf 'failover: master killed; replica promoted after %.1fs, named by '
    . 'the sentinel after %.1fs; first write to it %.2fs after the promotion; '
    . 'each node\'s write seen there %s after the failover\'s end',
    ($promoted // 0) - $killed, ($switched // 0) - $killed,
    ($written // 0) - ($promoted // 0),
    join ', ', map { defined ? sprintf('%.2fs', $_) : 'never' } @resumed;

my (%cached, %cold, $during);
for (split /\n/, $t->read_file($load_log) // '') {
    my ($when, $status, $domain) = split / /;
    ($domain =~ /^cold/ ? $cold{$status} : $cached{$status})++;
    $during++ if $when > $killed && $when < ($written // $killed);
}
is_deeply [keys %cached], [200], sprintf '0 refused requests for cached domains '
    . '(%d requests, %d during the failover)', $cached{200} // 0, $during // 0;
is_deeply [keys %cold], [200], sprintf 'cold filed domains played throughout '
    . '(%d, through the API while Redis was away)', $cold{200} // 0;

like $t->error_log, qr/icp_gate: (sentinel says redis master "mymaster" is now|redis master "mymaster" is at) 127\.0\.0\.1:@{[ $replica->port('redis') ]}/,
    'the failover is logged';

for my $node (@nodes) {
    $node->stop_nginx;
    is_deeply [$node->crashes], [], 'no crash or sanitizer report on node '
        . $node->port('http');
}
done_testing;
