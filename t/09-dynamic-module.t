# configure refuses nginx-rtmp-module added after the addon.  The addon
# builds as a dynamic module (--with-compat, the way distribution
# packages are built), next to a dynamic nginx-rtmp-module, and the loaded
# module gates requests as the static one does.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Rtmp;

plan skip_all => 'built once, in the plain run' if $ENV{ICP_GATE_ASAN};

my $t = IcpGate::Test->new;
my $repo = $t->repo;
my $src = "$repo/build/src";
plan skip_all => 'no nginx sources in build/src (run make first)'
    unless -d "$src/nginx" && -d "$src/nginx-rtmp-module";

my $work = $t->dir . '/nginx-dynamic';
system('cp', '-a', "$src/nginx", $work) == 0 or die "cp: $?";

# nginx-rtmp-module after the addon: configure stops and says why
my $wrong = `cd '$work' && ./configure --add-module='$repo' --add-module='$src/nginx-rtmp-module' 2>&1`;
isnt $?, 0, 'configure fails when nginx-rtmp-module is added after icp_gate';
like $wrong, qr/nginx-rtmp-module .* must be added before icp_gate/,
    'and says it must come first';

my $log = $t->dir . '/build.log';
my $ok = system("cd '$work' && ./configure --with-compat --prefix='$work'"
    . " --add-dynamic-module='$src/nginx-rtmp-module'"
    . " --add-dynamic-module='$repo' > '$log' 2>&1"
    . " && make -j2 >> '$log' 2>&1") == 0;
ok $ok, 'nginx builds with --with-compat and both dynamic modules'
    or diag `tail -30 '$log'`;

my $so = "$work/objs/ngx_icp_gate_module.so";
ok -f $so, 'ngx_icp_gate_module.so is built';
ok -f "$work/objs/ngx_rtmp_module.so", 'ngx_rtmp_module.so is built';

$t->start_api;
$t->api_set('filed.cn', 'filed');
mkdir $t->dir . '/html';
open my $fh, '>', $t->dir . '/html/index.html' or die;
print $fh "ok\n";
close $fh;

$t->{nginx} = "$work/objs/nginx";
$t->write_conf(<<"EOF" . $t->conf_prelude . <<'EOF');
load_module $work/objs/ngx_rtmp_module.so;
load_module $so;
EOF
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
    icp_gate on;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        root %%DIR%%/html;
        add_header X-Reason $icp_gate_reason always;
    }
}
EOF

my ($code, $out) = $t->nginx_test;
is $code, 0, 'nginx -t accepts the loaded module' or diag $out;

SKIP: {
    skip 'no dynamic build', 4 unless $ok && $code == 0;
    $t->start_nginx;
    is $t->get('live.filed.cn')->{status}, 200,
        'the dynamic module lets a filed domain through';
    my $r = $t->get('live.unfiled.cn');
    is $r->{status}, 403, 'and refuses an unfiled one';
    is $r->{headers}{'x-reason'}, 'unfiled', 'for the reason unfiled';

    SKIP: {
        skip 'ffmpeg is not installed', 1
            unless system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;
        my ($code, $err) = publish_run($t, tcurl($t, 'push.unfiled.cn'), 's');
        like $err, qr/publish refused for unfiled\.cn: unfiled/,
            'the dynamic RTMP gate refuses an unfiled publish';
    }
}

$t->finish;
