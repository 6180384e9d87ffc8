# A Redis that will not tell a node of changes: the default user may not
# run CLIENT (so no tracking), or may not SUBSCRIBE (Redis closes the
# channel as it subscribes).  Either is logged once, the channel is asked
# for again only after a minute, and requests go on as without it.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use IcpGate::Test;
use IcpGate::Conf;

my $t = IcpGate::Test->gated(redis => 1, api_default => 'filed', nginx => 0);

for my $case (['-client', qr/does not track keys \(NOPERM/],
              ['-subscribe', qr/closed the invalidation channel as it subscribed \(may this user SUBSCRIBE\?\)/])
{
    my ($rule, $logged) = @$case;
    $t->redis(qw(ACL SETUSER default reset on nopass ~* &* +@all), $rule);
    $t->write_conf(gate_conf($t));
    $t->start_nginx;

    is $t->get('live.filed.cn')->{status}, 200, "with $rule: a domain plays";
    sleep 3;
    my @lines = grep { $_ =~ $logged } split /\n/, $t->error_log;
    is scalar @lines, 1, "with $rule: logged once, and the node goes on";
    my $opened = () = $t->error_log =~ /connected for invalidations/g;
    ok $opened <= 1, "with $rule: the channel is not opened again at once ($opened)";
    is $t->get('live.filed.cn')->{status}, 200, "with $rule: still plays";

    $t->stop_nginx;
    unlink $t->dir . '/error.log';
}

$t->redis(qw(ACL SETUSER default reset on nopass ~* &* +@all));
$t->done_cleanly;
done_testing;
