# The Debian packages: built with dpkg-buildpackage against Debian's
# nginx-dev (util/deb.sh), installed with dpkg into Debian's own nginx next
# to libnginx-mod-rtmp, which then refuses an unfiled domain over HTTP and
# over RTMP (one worker: no auto_push).  Skipped without the packaging tools (make deb installs them)
# or without root (dpkg -i); run once, not again under the sanitizers.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Rtmp;
use Time::HiRes qw(sleep);

my $debian_nginx = '/usr/sbin/nginx';

plan skip_all => 'the packages are built once, by the plain run'
    if $ENV{ICP_GATE_ASAN};
plan skip_all => 'no packaging tools: make deb installs them'
    unless -x '/usr/bin/dpkg-buildpackage' && -x '/usr/bin/dh_nginx'
           && -x $debian_nginx && -f '/usr/lib/nginx/modules/ngx_rtmp_module.so';
plan skip_all => 'dpkg -i needs root' unless $> == 0;

my @packages = qw(libnginx-mod-icp-gate libnginx-mod-rtmp-icp-gate);

for my $p (@packages) {
    my $status = `dpkg-query -W -f '\${Status}' $p 2>/dev/null`;
    plan skip_all => "$p is installed already: this test would replace it"
        if $status =~ / ok installed$/;
}

local $ENV{ICP_GATE_NGINX} = $debian_nginx;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed', 'unfiled.cn' => 'unfiled' });

# the packages
my $out = $t->dir . '/deb';
my $log = `'${\ $t->repo}/util/deb.sh' '$out' 2>&1`;
is $?, 0, 'util/deb.sh builds the packages' or diag $log;

my %deb;
for my $p (@packages) {
    ($deb{$p}) = glob("$out/${p}_*.deb");
    ok $deb{$p}, "$p is built";
}

my $control = `dpkg-deb -f '$deb{'libnginx-mod-icp-gate'}' Depends`;
like $control, qr/nginx-abi-1\.22\.1-\d+/,
    'the HTTP package depends on the nginx ABI it was built for';
$control = `dpkg-deb -f '$deb{'libnginx-mod-rtmp-icp-gate'}' Depends`;
like $control, qr/libnginx-mod-rtmp \(>= 1:1\.2\.2\), libnginx-mod-rtmp \(<< 1:1\.2\.3~\)/,
    'the RTMP package depends on the libnginx-mod-rtmp its headers are of';
diag sprintf '%s: %d bytes', $_ =~ s{.*/}{}r, -s $_ for sort values %deb;

# installed into Debian's nginx
# purged after, whatever dpkg -i left: a package half installed would
# make every later run of this test skip
my $tried = 1;
END {
    if ($tried) {
        my @left = grep { my $s = `dpkg-query -W -f '\${Status}' $_ 2>/dev/null`;
                          $s ne '' && $s !~ /not-installed$/ } @packages;
        system('dpkg', '-P', reverse @left) if @left;
    }
}
my $installed = system('dpkg', '-i', @deb{@packages}) == 0;
ok $installed, 'dpkg -i installs both';

ok -l '/etc/nginx/modules-enabled/70-mod-icp-gate.conf',
    'dh_nginx enables the HTTP module at priority 70';
ok -l '/etc/nginx/modules-enabled/70-mod-rtmp-icp-gate.conf',
    'and the RTMP one after it';

my $check = `$debian_nginx -t 2>&1`;
like $check, qr/test is successful/, "Debian's own nginx.conf still passes nginx -t"
    or diag $check;
diag "nginx -t: $_" for grep { /nginx:/ } split /\n/, $check;

# Debian's nginx, the modules as the package enables them
symlink '/usr/lib/nginx/modules', $t->dir . '/modules';
$t->write_conf("include /etc/nginx/modules-enabled/*.conf;\n"
               . $t->conf_prelude(workers => 1) . <<'EOF');
icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;
icp_gate_api "%%API_URL%%";

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        application live { live on; }
    }
}

http {
    access_log off;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        icp_gate on;
        root %%DIR%%/html;
        location / { }
        location = /metrics { icp_gate off; icp_gate_metrics; }
    }
}
EOF
IcpGate::Conf::setup_html($t);
$t->start_nginx;

is $t->get('live.filed.cn')->{status}, 200, 'a filed domain is served';
is $t->get('live.unfiled.cn')->{status}, 403, 'an unfiled one is refused';
like $t->get('ops', '/metrics')->{body},
    qr/^icp_gate_decisions_total\{proto="http",result="deny",reason="unfiled"\} 1$/m,
    'icp_gate_metrics counts it';

SKIP: {
    skip 'ffmpeg is not installed', 2
        unless system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

    my ($code, $err) = publish_run($t, tcurl($t, 'push.unfiled.cn'), 'room');
    like $err, qr/icp_gate: publish refused for unfiled\.cn: unfiled/,
        'an RTMP publish on an unfiled domain is refused';
    my $pub = publish_start($t, tcurl($t, 'push.filed.cn'), 'room');
    sleep 1.5;
    my $frames;
    ($code, $err, $frames) = play_run($t, tcurl($t, 'play.filed.cn'), 'room');
    cmp_ok $frames, '>', 0, 'a stream on a filed one plays' or diag $err;
    client_stop($t, $pub);
}

$t->finish;
