# Revocations pushed to a fleet: three nginx instances (nodes) of two
# workers each share one Redis.  One worker of each node listens to Redis's
# invalidations (CLIENT TRACKING BCAST on the verdicts' hashes): a domain
# written in Redis is read again at once, so that every node refuses it
# within a second of the write, although each keeps its copies 60 s
# (icp_gate_local_ttl) and checks live sessions every 60 s
# (icp_gate_recheck) on its own.  Live publishers and players on every
# node are dropped within 2 s.  A killed invalidation connection is opened
# again, and every copy counts as stale until it is back.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);
use IcpGate::Test;
use IcpGate::Rtmp;

plan skip_all => 'ffmpeg is not installed'
    unless system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

my $t = IcpGate::Test->gated(redis => 1, api => {}, api_default => 'filed');

my $conf = <<'EOF';
rtmp_auto_push on;
rtmp_auto_push_reconnect 100ms;
rtmp_socket_dir %%DIR%%;
icp_gate_redis 127.0.0.1:%%REDIS_PORT%% timeout=1s;
icp_gate_api "%%API_URL%%";

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        icp_gate_log %%DIR%%/reject.log;

        application live {
            live on;
        }
    }
}

http {
    access_log off;
    icp_gate on;
    icp_gate_log %%DIR%%/reject.log;

    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        root %%DIR%%/html;
        add_header X-Reason "$icp_gate_reason" always;
    }
}
EOF

# node 1 is $t; nodes 2 and 3 share its Redis and filing API
my @nodes = ($t, map { IcpGate::Test->new } 1 .. 2);
for my $node (@nodes) {
    $node->{ports}{$_} = $t->port($_) for qw(redis api);
    mkdir $node->dir . '/html';
    open my $fh, '>', $node->dir . '/html/index.html' or die;
    print $fh "hello\n";
    close $fh;
    chmod 0755, $node->dir . '/html';
    $node->write_conf($node->conf_prelude . $conf);
    $node->start_nginx;
}

# when each node's gate dropped live sessions of a domain: the rejection
# log's times (Unix, with ms) of its "stage":"live" lines
sub dropped_at($domain) {
    my @at;
    for my $node (@nodes) {
        for (split /\n/, $node->read_file('reject.log') // '') {
            next unless /"domain":"\Q$domain\E"/ && /"stage":"live"/;
            my ($y, $mo, $d, $h, $mi, $s, $ms) =
                /"time":"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)\+00:00"/ or next;
            push @at, timegm($s, $mi, $h, $d, $mo - 1, $y) + $ms / 1000;
        }
    }
    return @at;
}

# video frames a player has decoded so far
sub frames($p) {
    my @f = ($t->read_file($p->{log}) // '') =~ /frame=\s*(\d+)/g;
    return $f[-1] // 0;
}

sub percentile($p, @v) {
    my @s = sort { $a <=> $b } @v;
    return $s[ int($p / 100 * $#s + 0.5) ];
}

# one invalidation connection a node, whatever its workers
ok $t->wait_for(sub { grep(/\S/, $t->redis(qw(CLIENT LIST TYPE pubsub))) == 3 }, 5),
    'each node opened one invalidation connection';
my @clients = grep { /\S/ && !/cmd=client\|list/ } $t->redis(qw(CLIENT LIST));
is scalar @clients, 15, 'a node of 2 workers keeps 5 connections (2 a worker, 1 for invalidations)';

# every node refuses a domain within a second of its revocation in Redis
sub revoke_and_time($domain) {
    my $start = time;
    $t->redis('HSET', "icp:domain:$domain", 'status', 'revoked');
    my %took;
    while (keys %took < @nodes && time - $start < 5) {
        for my $i (0 .. $#nodes) {
            next if exists $took{$i};
            my $r = $nodes[$i]->get("play.$domain");
            $took{$i} = time - $start
                if $r->{status} == 403 && ($r->{headers}{'x-reason'} // '') eq 'revoked';
        }
    }
    return map { $took{$_} // 99 } 0 .. $#nodes;
}

my @took;
for my $n (1 .. 20) {
    my $domain = "gone$n.cn";
    my @warm = map { $_->get("play.$domain")->{status} } @nodes;
    is_deeply \@warm, [200, 200, 200], "$domain is filed on every node" or next;
    push @took, revoke_and_time($domain);
}
is scalar(grep { $_ < 1 } @took), 60,
    '20 revocations reached the 3 nodes within 1 s each';
diag sprintf 'revocation to refusal over 20 trials x 3 nodes: p50 %.0f ms, '
    . 'p99 %.0f ms, max %.0f ms', map { 1000 * $_ }
    percentile(50, @took), percentile(99, @took), percentile(100, @took);
is $t->api_count('gone1.cn'), 1, 'the fleet asked the filing API once a domain';

# live publishers and players on every node are dropped within 2 s, in 20
# trials; the first 3 also wait for each ffmpeg to end and read why
my (@drops, @told);
for my $round (1 .. 20) {
    my $domain = "live$round.cn";
    my $full = $round <= 3;
    my (@pubs, @players);
    for my $node (@nodes) {
        push @pubs, publish_start($node, tcurl($node, "push.$domain"), 'room');
    }
    sleep 1;
    for my $node (@nodes) {
        push @players, play_start($node, tcurl($node, "play.$domain"), 'room');
    }
    ok $t->wait_for(sub {
        !grep { frames($_) < 3 } @players
    }, 10), "round $round: 3 publishers and 3 players live"
        or diag join "\n---\n", map { $t->read_file($_->{log}) // '' } @pubs, @players;

    my $start = time;
    $t->redis('HSET', "icp:domain:$domain", 'status', 'revoked');
    my @at;
    $t->wait_for(sub { (@at = dropped_at($domain)) >= 6 }, 4);
    @at = map { $_ - $start } @at;
    is scalar(grep { $_ < 2 } @at), 6,
        sprintf "round $round: the gates dropped 6 sessions within 2 s (%s)",
                join ', ', map { sprintf '%.2f', $_ } @at;
    push @told, @at;

    if (!$full) {
        client_stop($t, $_) for @pubs, @players;
        next;
    }

    my %gone;
    while (keys %gone < 6 && time - $start < 5) {
        for my $p (@pubs, @players) {
            next if $gone{$p->{pid}};
            $gone{$p->{pid}} = time - $start
                if waitpid($p->{pid}, POSIX::WNOHANG()) == $p->{pid};
        }
        sleep 0.02;
    }
    my @round = map { $gone{$_->{pid}} // 99 } @pubs, @players;
    push @drops, @round;
    for my $p (@pubs, @players) {
        my ($code, $err) = client_stop($t, $p);
        like $err, qr/Server error: icp_gate: (publish|play) refused for \Q$domain\E: revoked/,
            "round $round: a dropped client was told why";
    }
    is scalar(grep { $_ < 2 } @round), 6,
        sprintf "round $round: every client gone within 2 s (%s)",
                join ', ', map { sprintf '%.2f', $_ } @round;
}
diag sprintf 'revocation to live session dropped (status sent, media '
    . 'stopped; rejection log) over 20 trials x 6 sessions: p50 %.0f ms, '
    . 'p99 %.0f ms, max %.0f ms; to the ffmpeg client gone (3 trials): '
    . 'p50 %.0f ms, p99 %.0f ms',
    map { 1000 * $_ } percentile(50, @told), percentile(99, @told),
    percentile(100, @told), percentile(50, @drops), percentile(99, @drops);

# the read of the changed domain fails (Redis paused past its timeout):
# the copy expires, and the lookup that follows, which finds the domain
# revoked, tells the live sessions itself
{
    my $domain = 'paused.cn';
    my @clients = map { publish_start($_, tcurl($_, "push.$domain"), 'room') } @nodes;
    sleep 1.5;
    push @clients, map { play_start($_, tcurl($_, "play.$domain"), 'room') } @nodes;
    ok $t->wait_for(sub { !grep { frames($_) < 5 } @clients[3 .. 5] }, 10),
        "$domain: 3 publishers and 3 players live";
    $t->api_set($domain, 'revoked');
    my $start = time;
    # in one transaction: the re-read comes when Redis is paused already
    my $port = $t->port('redis');
    system("printf 'MULTI\\nHSET icp:domain:$domain status revoked\\n"
           . "CLIENT PAUSE 1300 ALL\\nEXEC\\n' | redis-cli -p $port >/dev/null") == 0
        or die 'redis-cli';
    my @at;
    $t->wait_for(sub { (@at = dropped_at($domain)) == 6 }, 8);
    @at = map { $_ - $start } @at;
    is scalar(grep { $_ < 4 } @at), 6,
        sprintf "$domain: the 6 sessions dropped although Redis did not answer the re-read (%s)",
                join ', ', map { sprintf '%.2f', $_ } @at;
    client_stop($t, $_) for @clients;
}

# the invalidation connections killed: opened again, and what changed
# meanwhile still reaches every node
my @warm = map { $_->get('play.killed.cn')->{status} } @nodes;
is_deeply \@warm, [200, 200, 200], 'killed.cn is filed on every node';
$t->redis(qw(CLIENT KILL TYPE pubsub));
my @killed = revoke_and_time('killed.cn');
is scalar(grep { $_ < 1 } @killed), 3,
    sprintf 'a revocation right after CLIENT KILL reached every node (%s)',
            join ', ', map { sprintf '%.0f ms', 1000 * $_ } @killed;
diag sprintf 'after the invalidation connections were killed, a revocation '
    . 'reached the nodes in %s', join ', ', map { sprintf '%.0f ms', 1000 * $_ } @killed;
ok $t->wait_for(sub { grep(/\S/, $t->redis(qw(CLIENT LIST TYPE pubsub))) == 3 }, 5),
    'every node opened its invalidation connection again';
for my $node (@nodes) {
    like $node->error_log, qr/invalidation channel lost/, 'the loss is logged';
}
my $again = 'again.cn';
is_deeply [map { $_->get("play.$again")->{status} } @nodes], [200, 200, 200],
    'again.cn is filed on every node';
my @back = revoke_and_time($again);
is scalar(grep { $_ < 1 } @back), 3, 'a revocation once the channel is back: every node';

for my $node (@nodes) {
    $node->stop_nginx;
    is_deeply [$node->crashes], [], 'no crash or sanitizer report on node '
        . $node->port('http');
}
done_testing;
