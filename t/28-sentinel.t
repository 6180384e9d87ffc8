# Redis through Sentinel: icp_gate_redis sentinel=... master=... asks a
# sentinel where the master is, checks it with ROLE, and follows a
# failover.  A master, its replica and one sentinel (quorum 1, down after
# 1 s) run here; the master is killed (SIGKILL) while requests of cached
# and of cold domains run, the sentinel promotes the replica, and the
# module writes there within a second of the promotion.

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
$t->write_conf(gate_conf($t, redis =>
    "icp_gate_redis sentinel=127.0.0.1:$dead,127.0.0.1:$sport master=mymaster timeout=500ms;"));
$t->start_nginx;

my @cached = map { "c$_.cn" } 1 .. 20;
is_deeply [map { $t->get("live.$_")->{status} } @cached], [(200) x 20],
    '20 filed domains play';
ok $t->wait_for(sub { $t->redis(qw(HGET icp:domain:c20.cn status)) eq 'filed' }),
    'their verdicts are written to the master the sentinel named';
like $t->error_log, qr/icp_gate: redis master "mymaster" is at 127\.0\.0\.1:$master_port/,
    'the master the sentinel named is logged';

# a bad configuration names the directive
$t->write_conf(gate_conf($t, redis => 'icp_gate_redis sentinel=127.0.0.1:1 timeout=1s;'));
my ($code, $out) = $t->nginx_test;
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
        my $r = $t->get("live.$domain", '/index.html', timeout => 5);
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

my ($promoted, $written);
$t->wait_for(sub {
    $promoted //= time if ($replica->redis('ROLE'))[0] eq 'master';
    $written //= time if $promoted && execs($replica) > $before;
    $written;
}, 20);
waitpid $load, 0;

ok $promoted, sprintf 'the sentinel promoted the replica (%.1fs after the kill)',
    ($promoted // time) - $killed;
ok $written && $written - $promoted < 1,
    sprintf 'the module wrote to the new master %.2fs after the promotion',
            ($written // time) - ($promoted // time);
diag sprintf 'failover: master killed, replica promoted after %.1fs, module '
    . 'writing to it %.2fs after that', ($promoted // 0) - $killed,
    ($written // 0) - ($promoted // 0);

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

ok $t->wait_for(sub {
    $t->get('live.after.cn');
    $replica->redis(qw(HGET icp:domain:after.cn status)) eq 'filed'
}, 5), 'verdicts go to the new master';
like $t->error_log, qr/icp_gate: (sentinel says redis master "mymaster" is now|redis master "mymaster" is at) 127\.0\.0\.1:@{[ $replica->port('redis') ]}/,
    'the failover is logged';

$t->stop_nginx;
is_deeply [$t->crashes], [], 'no crash or sanitizer report';
done_testing;
