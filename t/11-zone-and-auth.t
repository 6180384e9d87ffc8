# A full cache zone makes room by evicting the least recently used domains;
# Redis with a password and a database number; a wrong password is logged
# and the gate goes on with the filing API.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Conf;

my $t = IcpGate::Test->gated(
    redis => 1, api_default => 'filed', nginx => 0,
    # tracking=off: a hash deleted in Redis would be read again at once
    conf => { redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% db=3 password=s3cret tracking=off;',
              main => 'icp_gate_zone small:32k;' });
$t->redis(qw(CONFIG SET requirepass s3cret));
$t->start_nginx;

sub redis_db3(@args) {
    return $t->redis('-a', 's3cret', '--no-auth-warning', '-n', '3', @args);
}

# a zone of 32k holds a few dozen domains; 300 pass through it
my $ok = 0;
for my $i (1 .. 300) {
    $ok++ if $t->get("live.d$i.cn")->{status} == 200;
}
is $ok, 300, '300 domains through a 32k zone: every one judged';
unlike $t->error_log, qr/\[(alert|crit)\]/, 'no allocation alert: old entries made way';

is redis_db3('HGET', 'icp:domain:d42.cn', 'status'), 'filed',
    'verdicts are written to the configured database with the password';
is redis_db3('DBSIZE'), 300, 'one hash a domain in database 3';

# without their Redis copies, only the zone can spare d1 and d300 a request
redis_db3('DEL', 'icp:domain:d1.cn', 'icp:domain:d300.cn');

is $t->get('live.d300.cn')->{status}, 200,
    'a recent domain answers';
is $t->api_count('d300.cn'), 1, 'from the zone: it was kept';
is $t->get('live.d1.cn')->{status}, 200,
    'the oldest domain answers';
is $t->api_count('d1.cn'), 2, 'through the API again: the zone let it go';
is $t->get('live.d2.cn')->{status}, 200,
    'another evicted domain answers';
is $t->api_count('d2.cn'), 1, 'from Redis, without asking the API';

$t->stop_nginx;

# a wrong password
$t->write_conf(gate_conf($t,
    redis => 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%% password=wrong;'));
$t->start_nginx;
is $t->get('live.other.cn')->{status}, 200,
    'with a wrong Redis password the filing API still judges';
ok $t->wait_for(sub { $t->error_log =~ /icp_gate: redis .* refused setup: /s }, 5),
    'the refused AUTH is logged';

$t->finish;
