# Reload with lookups in flight: the waiting requests get their answers,
# the old workers leave without lingering or leaking sockets, the cache
# survives.  Log reopen: "nginx -s reopen" moves the rejection log on.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use IcpGate::Test;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed',
             'inflight.cn' => ['filed', delay_ms => 1500] },
    conf => {});

is $t->get('live.filed.cn')->{status}, 200,
    'filed.cn plays before the reload';

# ten requests wait on a slow lookup while nginx reloads
pipe(my $rd, my $wr) or die "pipe: $!";
my $child = fork // die "fork: $!";
if ($child == 0) {
    close $rd;
    my $statuses = $t->http_parallel(10, host => 'live.inflight.cn',
                                     path => '/index.html');
    print $wr "@$statuses\n";
    close $wr;
    POSIX::_exit(0);
}
close $wr;

ok $t->wait_for(sub { $t->api_count('inflight.cn') == 1 }, 5),
    'the lookup is in flight';
my @old = $t->worker_pids;
ok $t->reload, 'reloaded: new workers replaced the old';

my $line = <$rd>;
waitpid $child, 0;
my @statuses = split ' ', $line // '';
is scalar(grep { $_ == 200 } @statuses), 10,
    'requests waiting on a lookup during the reload all got their verdict'
    or diag "statuses: @statuses";
is $t->api_count('inflight.cn'), 1, 'with one API request';

ok $t->wait_for(sub { !(grep { kill 0, $_ } @old) }, 10),
    'the old workers exited';
unlike $t->error_log, qr/open socket .* left in connection/,
    'no socket was left open by an exiting worker';

my $count = $t->api_count('filed.cn');
is $t->get('live.filed.cn')->{status}, 200,
    'filed.cn plays after the reload';
is $t->api_count('filed.cn'), $count, 'from the cache kept across the reload';

# reopen
is $t->http(host => 'before.cn', path => '/')->{status}, 403, 'a refusal';
my $log = $t->dir . '/reject.log';
rename $log, "$log.1" or die "rename: $!";
$t->reopen;
ok $t->wait_for(sub { -e $log }, 5), 'nginx -s reopen creates a new rejection log';
is $t->http(host => 'after.cn', path => '/')->{status}, 403, 'another refusal';
ok $t->wait_for(sub { ($t->read_file('reject.log') // '') =~ /after\.cn/ }, 5),
    'the next refusal goes to the new file';
my $old = $t->read_file('reject.log.1');
like $old, qr/before\.cn/, 'the old file kept its lines';
unlike $old, qr/after\.cn/, 'and got no new ones';

$t->finish;
