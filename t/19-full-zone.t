# A full zone makes room for every verdict with a bounded number of
# evictions, whatever the domain's length: a domain whose entry needs a
# bigger slot than the ones the zone is full of is still kept, or, when
# even that fails, remembered by the worker: never one filing API request
# per request.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    api_default => 'filed',
    conf => { redis => '', workers => 1,
              main => 'icp_gate_zone small:128k;' });

# the zone full of short domains
my $ok = 0;
for my $i (1 .. 1200) {
    $ok++ if $t->get("live.d$i.cn")->{status} == 200;
}
is $ok, 1200, '1200 short domains through a 128k zone';

# every other one used again a second later: the least recently used are
# spread over every page of the zone, none of which evicting them frees
sleep 1.1;
for (my $i = 301; $i <= 1200; $i += 2) {
    $t->get("live.d$i.cn");
}

# then long ones, each needing a slot of a size the zone holds none of
# (registrable domains of 70 and 139 bytes: a 63-byte label under com.cn,
# and two under the wildcard rule *.kawasaki.jp)
for my $domain (('a' x 63) . '.com.cn',
                ('b' x 63) . '.' . ('c' x 63) . '.kawasaki.jp')
{
    my $statuses = join ' ', map { $t->get("www.$domain")->{status} } 1 .. 5;
    is $statuses, '200 200 200 200 200', length($domain) . "-byte domain plays";
    is $t->api_count($domain), 1, length($domain) . '-byte domain: one API request for 5 requests';
}

# and the short ones still come and go
$ok = 0;
for my $i (1201 .. 1300) {
    $ok++ if $t->get("live.d$i.cn")->{status} == 200;
}
is $ok, 100, '100 more short domains after them';
is $t->get('live.d1300.cn')->{status}, 200, 'the last one answers again';
is $t->api_count('d1300.cn'), 1, 'from the zone';

$t->finish;
