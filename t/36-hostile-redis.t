# A hostile or broken Redis, or Redis Sentinel: a stand-in
# (t/hostile_redis.py) sets a connection up as Redis would, then sends
# one of the malformed replies the review and the fuzzers tried, on the
# invalidation channel, in the channel's setup, on any connection, in
# answer to ROLE, to SENTINEL get-master-addr-by-name, and as a
# +switch-master message.  For each: no worker crashes (hiredis 0.14
# asserts on most of these shapes), no worker allocates past the reader's
# limits (a plain build's workers are measured), the connection is closed
# and the error log says what was wrong (for the invalidation channel and
# the sentinels once, though it is opened again and again), and a filed
# domain is let in, from the filing API.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use JSON::PP ();
use IcpGate::Test;
use IcpGate::Conf;

my $t = IcpGate::Test->gated(api_default => 'filed', nginx => 0);
my $dir = $t->dir;
my $python = $ENV{ICP_GATE_PYTHON} // 'python3';
my $stand_in = $t->repo . '/t/hostile_redis.py';
my $rport = $t->port('hostile-redis');
my $sport = $t->port('hostile-sentinel');

my @stand_ins = (
    $t->_spawn("$dir/hostile-redis.log", $python, $stand_in,
               '--port', $rport, '--shape-file', "$dir/redis.shape",
               '--log', "$dir/commands.log"),
    $t->_spawn("$dir/hostile-sentinel.log", $python, $stand_in,
               '--port', $sport, '--role', 'sentinel',
               '--master-port', $rport,
               '--shape-file', "$dir/sentinel.shape",
               '--log', "$dir/commands.log"),
);
END { kill 'KILL', @stand_ins if @stand_ins }

ok $t->wait_for(sub { IO::Socket::INET->new("127.0.0.1:$rport")
                      && IO::Socket::INET->new("127.0.0.1:$sport") }, 10),
    'the stand-ins listen';

my $channel = 'invalidation channel closed for a malformed reply';
my $sentinel = "sentinel 127.0.0.1:$sport sent a malformed reply";
my $lost = 'redis \S+ connection for \w+ closed for a malformed reply';
my $array = 'an array of 2000000000 elements, more than 131072';
my $bulk = 'a bulk string of 2000000000 bytes, more than 1048576';

# shape => [where, what the error log says, the command each new try sends]
my %shapes = (
    # the invalidation channel: hiredis 0.14 asserts on the first eleven
    'int-kind'      => [redis => [$channel, 'a pub/sub message whose kind is an integer'], 'CLIENT ID'],
    'nil-kind'      => [redis => [$channel, 'a pub/sub message whose kind is nil'], 'CLIENT ID'],
    'array-kind'    => [redis => [$channel, 'a pub/sub message whose kind is an array'], 'CLIENT ID'],
    'status-kind'   => [redis => [$channel, 'a pub/sub message whose kind is a status'], 'CLIENT ID'],
    'int-channel'   => [redis => [$channel, 'a pub/sub message whose channel is an integer'], 'CLIENT ID'],
    'message-1'     => [redis => [$channel, 'a pub/sub message of 1 element'], 'CLIENT ID'],
    'message-2'     => [redis => [$channel, 'a pub/sub message of 2 elements'], 'CLIENT ID'],
    'message-4'     => [redis => [$channel, 'a pub/sub message of 4 elements'], 'CLIENT ID'],
    'empty-push'    => [redis => [$channel, 'a pub/sub message of 0 elements'], 'CLIENT ID'],
    'unsubscribe-2' => [redis => [$channel, 'a pub/sub message of 2 elements'], 'CLIENT ID'],
    'unsubscribe-all' => [redis => [$channel, 'a pub/sub message of kind "unsubscribe"'], 'CLIENT ID'],
    'pmessage'      => [redis => [$channel, 'a pub/sub message of 4 elements'], 'CLIENT ID'],
    'int-push'      => [redis => [$channel, 'a pub/sub message that is an integer'], 'CLIENT ID'],
    'nil-push'      => [redis => [$channel, 'a pub/sub message that is nil'], 'CLIENT ID'],
    'resp3-push'    => [redis => [$channel, 'Protocol error, got ">" as reply type byte'], 'CLIENT ID'],
    'int-keys'      => [redis => [$channel, 'an invalidation with a key that is an integer'], 'CLIENT ID'],
    'nested-keys'   => [redis => [$channel, 'an invalidation with a key that is an array'], 'CLIENT ID'],
    'deep-nesting'  => [redis => [$channel, 'No support for nested multi bulk replies with depth > 7'], 'CLIENT ID'],
    'huge-array'    => [redis => [$channel, $array], 'CLIENT ID'],
    'huge-bulk'     => [redis => [$channel, $bulk], 'CLIENT ID'],
    'long-line'     => [redis => [$channel, 'more than 2097152 bytes of a reply with no end in sight'], 'CLIENT ID'],
    'many-keys'     => [redis => [$channel, 'a reply of more than 16777216 bytes'], 'CLIENT ID'],
    # its setup
    'id-int64-min'  => [redis => [$channel, 'CLIENT ID answered with a negative number'], 'CLIENT ID'],
    'id-zero'       => [redis => [$channel, 'CLIENT ID answered with 0'], 'CLIENT ID'],
    'id-negative'   => [redis => [$channel, 'CLIENT ID answered with a negative number'], 'CLIENT ID'],
    'id-string'     => [redis => [$channel, 'CLIENT ID answered with a bulk string'], 'CLIENT ID'],
    'id-nil'        => [redis => [$channel, 'CLIENT ID answered with nil'], 'CLIENT ID'],
    'id-huge-array' => [redis => [$channel, $array], 'CLIENT ID'],
    'id-error'      => [redis => qr/\[error\] .*does not track keys \(ERR unknown command 'CLIENT'\)/],
    # any connection: a reply to no command; a read
    'extra-reply'   => [redis => qr/redis \S+ connection for reads closed for a malformed reply \(an integer that answers no command\)/, 'PING'],
    'read-huge'     => [redis => qr/$lost \(\Q$array\E\)/],
    # the master the sentinel named answers ROLE
    'role-empty'    => [role => qr/is not the master of/],
    'role-int'      => [role => qr/is not the master of/],
    'role-nil'      => [role => qr/is not the master of/],
    'role-int-first' => [role => qr/is not the master of/],
    'role-replica'  => [role => qr/is not the master of/],
    'role-huge'     => [role => qr/$lost \(\Q$array\E\)/],
    'role-huge-inside' => [role => qr/$lost \(\Q$array\E\)/],
    # the sentinel, asked where the master is
    'gm-int'        => [sentinel => [$sentinel, 'an answer that is an integer'], 'SENTINEL get-master-addr-by-name'],
    'gm-string'     => [sentinel => [$sentinel, 'an answer that is a bulk string'], 'SENTINEL get-master-addr-by-name'],
    'gm-one'        => [sentinel => [$sentinel, 'an answer of 1 element'], 'SENTINEL get-master-addr-by-name'],
    'gm-three'      => [sentinel => [$sentinel, 'an answer of 3 elements'], 'SENTINEL get-master-addr-by-name'],
    'gm-ints'       => [sentinel => [$sentinel, 'an answer with an invalid host'], 'SENTINEL get-master-addr-by-name'],
    'gm-nested'     => [sentinel => [$sentinel, 'an answer with an invalid host'], 'SENTINEL get-master-addr-by-name'],
    'gm-bad-port'   => [sentinel => [$sentinel, 'an answer with an invalid port'], 'SENTINEL get-master-addr-by-name'],
    'gm-bad-host'   => [sentinel => [$sentinel, 'an answer with an invalid host'], 'SENTINEL get-master-addr-by-name'],
    'gm-huge'       => [sentinel => [$sentinel, $array], 'SENTINEL get-master-addr-by-name'],
    'gm-huge-bulk'  => [sentinel => [$sentinel, $bulk], 'SENTINEL get-master-addr-by-name'],
    # and listened to for failovers
    'sw-3-words'    => [sentinel => [$sentinel, 'a failover told in fewer than 5 words'], 'SUBSCRIBE +switch-master'],
    'sw-6-words'    => [sentinel => [$sentinel, 'a failover told in more than 5 words'], 'SUBSCRIBE +switch-master'],
    'sw-bad-port'   => [sentinel => [$sentinel, 'a failover to an invalid address'], 'SUBSCRIBE +switch-master'],
    'sw-int'        => [sentinel => [$sentinel, 'a failover told as an integer'], 'SUBSCRIBE +switch-master'],
    'sw-int-kind'   => [sentinel => [$sentinel, 'a pub/sub message whose kind is an integer'], 'SUBSCRIBE +switch-master'],
    'sw-message-2'  => [sentinel => [$sentinel, 'a pub/sub message of 2 elements'], 'SUBSCRIBE +switch-master'],
    'sw-message-4'  => [sentinel => [$sentinel, 'a pub/sub message of 4 elements'], 'SUBSCRIBE +switch-master'],
    'sw-huge'       => [sentinel => [$sentinel, $array], 'SUBSCRIBE +switch-master'],
);

my @listed = split /\n/, `$python $stand_in --shapes`;
is_deeply [sort keys %shapes], [sort @listed], 'every shape of the stand-in is tried';

sub write_file($name, $text) {
    open my $fh, '>', "$dir/$name" or die "$dir/$name: $!";
    print $fh $text;
    close $fh;
}

# the commands the stand-ins received since the shape began
sub commands() {
    my $json = JSON::PP->new;
    return map { $json->decode($_)->{cmd} } grep { /\S/ }
           split /\n/, $t->read_file('commands.log') // '';
}

# the largest of the workers' peak address space and peak resident set, kB
sub worker_memory() {
    my ($peak, $hwm) = (0, 0);
    for my $pid ($t->worker_pids) {
        my $status = $t->read_file("/proc/$pid/status") // next;
        my ($vm) = $status =~ /^VmPeak:\s+(\d+)/m;
        my ($rss) = $status =~ /^VmHWM:\s+(\d+)/m;
        $peak = $vm if $vm && $vm > $peak;
        $hwm = $rss if $rss && $rss > $hwm;
    }
    return ($peak, $hwm);
}

for my $shape (sort keys %shapes) {
    my ($where, $said, $retry) = @{ $shapes{$shape} };
    my $logged = ref $said eq 'ARRAY'
               ? qr/\[error\] .*\Q$said->[0]\E \(\Q$said->[1]\E\)/ : $said;

    write_file('redis.shape', $where eq 'sentinel' ? 'none' : $shape);
    write_file('sentinel.shape', $where eq 'sentinel' ? $shape : 'none');
    write_file('commands.log', '');
    unlink "$dir/error.log";

    my $redis = $where eq 'redis'
        ? "icp_gate_redis 127.0.0.1:$rport timeout=500ms;"
        : "icp_gate_redis sentinel=127.0.0.1:$sport master=mymaster timeout=500ms;";
    $t->write_conf(gate_conf($t, workers => 1, redis => $redis));
    $t->start_nginx;

    is $t->get('live.filed.cn')->{status}, 200, "$shape: a filed domain is let in";
    ok $t->wait_for(sub { $t->error_log =~ $logged }, 5),
        "$shape: the connection is closed, and the log says why"
        or diag $t->error_log;

    # opened again with its backoff; what was wrong logged once
    if ($retry) {
        my $tried = sub { scalar grep { "@$_" =~ /^\Q$retry\E/i } commands() };
        ok $t->wait_for(sub { $tried->() >= 3 }, 10), "$shape: tried again and again";
        my $n = () = $t->error_log =~ /$logged/g;
        is $n, 1, "$shape: logged once while it goes on";
    }

    # tracking never redirected to a connection id Redis would not give
    my @redirect = grep { uc $_->[0] eq 'CLIENT' && uc $_->[1] eq 'TRACKING'
                          && $_->[4] !~ /^[1-9][0-9]*$/ } commands();
    is scalar @redirect, 0, "$shape: no tracking redirected to a bad id";
    unlike $t->error_log, qr/forged/, "$shape: nothing a server sent is logged raw";

    is $t->get('live.filed.cn')->{status}, 200, "$shape: still let in";

    unless ($ENV{ICP_GATE_ASAN}) {    # the sanitizers' shadow memory, no measure
        my ($peak, $hwm) = worker_memory();
        cmp_ok $peak, '<', 1024 * 1024, "$shape: no worker reserved a GB ($peak kB)";
        cmp_ok $hwm, '<', 48 * 1024, "$shape: no worker held 48 MB ($hwm kB)";
    }

    $t->stop_nginx;
    is_deeply [$t->crashes], [], "$shape: no crash or sanitizer report";
    unlink glob "$dir/asan.* $dir/ubsan.*";    # told: the next shape's own
}

kill 'TERM', @stand_ins;
waitpid $_, 0 for @stand_ins;
@stand_ins = ();

$t->finish;
