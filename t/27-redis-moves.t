# A Redis named by a host name is followed when the name's address
# changes: the name is resolved again, without blocking the worker, each
# time a connection is opened.  Here an /etc/hosts entry of the test's is
# rewritten from 127.0.0.1 to 127.0.0.2, the Redis at the first address
# stops, and the verdicts go to the Redis at the second (same port).

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Conf;
use IO::Socket::IP;

plan skip_all => '/etc/hosts is not writable here (the test runs as root)'
    unless -w '/etc/hosts';

my $name = "icp-gate-redis-$$.test";
my $hosts = do { local (@ARGV, $/) = '/etc/hosts'; <> };

# in place: /etc/hosts may be a bind mount, which a rename would not reach
sub hosts_entry($address) {
    open my $fh, '+<', '/etc/hosts' or die "/etc/hosts: $!";
    my $text = $hosts;
    $text .= "\n" unless $text =~ /\n\z/;
    $text .= "$address $name\n" if defined $address;
    seek $fh, 0, 0;
    print $fh $text;
    truncate $fh, length $text;
    close $fh;
}
END { hosts_entry(undef) if defined $hosts }

hosts_entry('127.0.0.1');

my $t = IcpGate::Test->gated(
    redis => 1, api_default => 'filed',
    conf => { redis => "icp_gate_redis $name:%%REDIS_PORT%% timeout=1s;" });

# the second Redis: the same port on the other address
my $second = IcpGate::Test->new;
$second->{ports}{redis} = $t->port('redis');
$second->start_redis(bind => '127.0.0.2');

is $t->get('live.one.cn')->{status}, 200, 'one.cn plays';
ok $t->wait_for(sub { $t->redis(qw(HGET icp:domain:one.cn status)) eq 'filed' }),
    'its verdict is written to the Redis the name gave at first';

hosts_entry('127.0.0.2');
$t->stop_redis;

is $t->get('live.two.cn')->{status}, 200, 'with that Redis gone, two.cn plays';
ok $t->wait_for(sub {
    $t->get('live.three.cn');
    $second->redis(qw(HGET icp:domain:three.cn status)) eq 'filed'
}, 10), 'the name is resolved again: verdicts go to the Redis at its new address';
ok $t->wait_for(sub { grep(/\S/, $second->redis(qw(CLIENT LIST TYPE pubsub))) == 1 }, 5),
    'and so does the node\'s invalidation connection';

$second->redis(qw(HSET icp:domain:three.cn status revoked));
ok $t->wait_for(sub { $t->get('live.three.cn')->{status} == 403 }, 2),
    'whose revocations reach the node';

$t->stop_nginx;

# an IPv6 address, bracketed as nginx writes it, is an address, not a name
SKIP: {
    skip 'no IPv6 loopback here', 3
        unless IO::Socket::IP->new(LocalHost => '::1', Listen => 1);
    my $v6 = IcpGate::Test->new;
    $v6->start_redis(bind => '::1');
    $t->write_conf(gate_conf($t, redis =>
        'icp_gate_redis [::1]:' . $v6->port('redis') . ' timeout=1s;'));
    $t->start_nginx;
    is $t->get('live.six.cn')->{status}, 200, 'six.cn plays';
    ok $t->wait_for(sub { $v6->redis(qw(HGET icp:domain:six.cn status)) eq 'filed' }),
        'its verdict is written to the Redis on [::1]';
    unlike $t->error_log, qr/resolving "\[::1\]"/, 'which is not resolved';
}

$t->finish;
