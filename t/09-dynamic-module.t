# The addon as dynamic modules in an nginx built --with-compat, the way
# distribution packages are built: ngx_icp_gate_module.so (the engine and
# the HTTP gate) loads into any nginx, with or without an rtmp module;
# ngx_rtmp_icp_gate_module.so (the RTMP gate) is built where an rtmp host
# module is, nginx-rtmp-module or nginx-http-flv-module, static or dynamic,
# and loads after it and the engine.  configure refuses an rtmp host module
# added after the addon.

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
# the fork's tree, from vendor/ (or FLV_SRC), as make flv unpacks it
system("$repo/util/sources.sh", $src, 'flv') == 0
    or diag 'util/sources.sh could not unpack nginx-http-flv-module';
my $flv = -d "$src/nginx-http-flv-module" ? "$src/nginx-http-flv-module" : undef;
my $ffmpeg = system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

# a copy of the nginx tree, configured with @args; (tree, configure output)
sub configure($name, @args) {
    my $work = $t->dir . "/$name";
    system('cp', '-a', "$src/nginx", $work) == 0 or die "cp: $?";
    my $out = `cd '$work' && ./configure --with-compat --prefix='$work' @args 2>&1`;
    return ($work, $?, $out);
}

sub build($name, @args) {
    my ($work, $rc, $out) = configure($name, @args);
    my $log = $t->dir . "/$name.log";
    $rc = system("cd '$work' && make -j2 > '$log' 2>&1") if $rc == 0;
    ok $rc == 0, "$name: nginx builds with --with-compat and @args"
        or diag $out, `tail -30 '$log'`;
    return $work;
}

sub undefined_rtmp($so) {
    return grep { /\bngx_rtmp_/ } `nm -D --undefined-only '$so'`;
}

# nginx-rtmp-module after the addon: configure stops and says why
my (undef, $rc, $wrong) = configure('wrong-order', "--add-module='$repo'",
                                    "--add-module='$src/nginx-rtmp-module'");
isnt $rc, 0, 'configure fails when nginx-rtmp-module is added after icp_gate';
like $wrong, qr/nginx-rtmp-module .* must be added before icp_gate/,
    'and says it must come first';

# a static addon cannot use a dynamic rtmp module: configure says so
(undef, $rc, $wrong) = configure('mixed', "--add-dynamic-module='$src/nginx-rtmp-module'",
                                 "--add-module='$repo'");
isnt $rc, 0, 'configure fails with the rtmp module dynamic and icp_gate static';
like $wrong, qr/the rtmp module \(.*\) is dynamic: add icp_gate with --add-dynamic-module/,
    'and says what to do';

# HTTP only: one object, no RTMP gate
my ($plain, $prc) = configure('http-only', "--add-dynamic-module='$repo'");
my $makefile = $t->read_file("$plain/objs/Makefile") // '';
is $prc, 0, 'http-only: configure with the addon alone';
like $makefile, qr{objs/ngx_icp_gate_module\.so}, 'http-only: the engine object';
unlike $makefile, qr{ngx_rtmp_icp_gate_module}, 'http-only: no RTMP gate object';

$t->start_api;
$t->api_set('filed.cn', 'filed');
mkdir $t->dir . '/html';
open my $fh, '>', $t->dir . '/html/index.html' or die;
print $fh "ok\n";
close $fh;

my $http = <<'EOF';
icp_gate_api "%%API_URL%%";
http {
    access_log off;
    icp_gate on;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        root %%DIR%%/html;
        add_header X-Reason $icp_gate_reason always;
%%FLV%%
    }
}
EOF

my $rtmp = <<'EOF';
rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;
        icp_gate on;
        application live { live on; }
    }
}
EOF

my $flv_location = <<'EOF';
        location /flv {
            icp_gate off;
            flv_live on;
        }
EOF

# runs nginx with these objects loaded and the blocks given; returns
# (nginx -t exit code, its output), the tests done when it started
sub run_with($name, $work, $loads, %o) {
    my $conf = join '', map { "load_module $work/objs/$_;\n" } @$loads;
    my $blocks = $http . ($o{rtmp} ? "%%AUTO_PUSH%%\n$rtmp" : '');
    $blocks =~ s/%%FLV%%\n/$o{flv} ? $flv_location : ''/e;
    $t->{nginx} = "$work/objs/nginx";
    $t->write_conf($conf . $t->conf_prelude . $blocks);
    my ($code, $out) = $t->nginx_test;
    return ($code, $out) if $o{expect_failure};
    is $code, 0, "$name: nginx -t accepts @$loads" or do { diag $out; return };

    $t->start_nginx;
    is $t->get('live.filed.cn')->{status}, 200, "$name: a filed domain over HTTP";
    my $r = $t->get('live.unfiled.cn');
    is $r->{headers}{'x-reason'} . ' ' . $r->{status}, 'unfiled 403',
        "$name: an unfiled one is refused";

    if ($o{rtmp} && $ffmpeg) {
        my ($refused, $filed) = map { $_ . ++$t->{runs} } 's', 'f';
        my ($code, $err) = publish_run($t, tcurl($t, 'push.unfiled.cn'), $refused);
        like $err, qr/publish refused for unfiled\.cn: unfiled/,
            "$name: the RTMP gate refuses an unfiled publish";

        # rtmp_auto_push works with a dynamic rtmp module, and the gate
        # still decides before it
        my $pub = publish_start($t, tcurl($t, 'push.filed.cn'), $filed);
        ok $t->wait_for(sub { $t->error_log =~ /relay: create push name='$filed' .*url='unix:/ }, 8),
            "$name: auto_push relays a filed publish to the other worker";
        client_stop($t, $pub);
        unlike $t->error_log, qr/relay: create push name='$refused'/,
            "$name: and never the refused one";
    }
    if ($o{flv}) {
        my $path = '/flv?port=' . $t->port('rtmp') . '&app=live&stream=s';
        is $t->get('play.unfiled.cn', $path)->{status}, 403,
            "$name: the RTMP gate refuses an unfiled HTTP-FLV play";
    }
    $t->stop_nginx;
    return ($code, $out);
}

# with nginx-rtmp-module, dynamic: three objects
my $with_rtmp = build('with-rtmp', "--add-dynamic-module='$src/nginx-rtmp-module'",
                      "--add-dynamic-module='$repo'");
my @so = map { "$with_rtmp/objs/$_.so" }
         qw(ngx_rtmp_module ngx_icp_gate_module ngx_rtmp_icp_gate_module);
ok -f $_, "with-rtmp: $_ is built" for @so;
is_deeply [undefined_rtmp($so[1])], [],
    'the engine object needs no rtmp symbol';

SKIP: {
    skip 'no dynamic build', 14 unless -f $so[1] && -f $so[2];

    run_with('http only', $with_rtmp, ['ngx_icp_gate_module.so']);
    run_with('nginx-rtmp', $with_rtmp,
             [qw(ngx_rtmp_module.so ngx_icp_gate_module.so ngx_rtmp_icp_gate_module.so)],
             rtmp => 1);

    my ($code, $out) = run_with('the RTMP gate first', $with_rtmp,
        [qw(ngx_rtmp_module.so ngx_rtmp_icp_gate_module.so ngx_icp_gate_module.so)],
        rtmp => 1, expect_failure => 1);
    isnt $code, 0, 'the RTMP gate loaded before the engine: nginx -t fails';
    like $out, qr/ngx_rtmp_icp_gate_module\.so.*undefined symbol: ngx_icp_gate_/,
        'naming the object and a missing engine symbol';
    diag "the RTMP gate before the engine: " . (split /\n/, $out)[0];
}

# with nginx-http-flv-module, dynamic
SKIP: {
    skip 'no nginx-http-flv-module sources (make test unpacks them)', 10
        unless $flv;
    my $with_flv = build('with-flv', "--add-dynamic-module='$flv'",
                         "--add-dynamic-module='$repo'");
    ok -f "$with_flv/objs/$_.so", "with-flv: $_.so is built"
        for qw(ngx_http_flv_live_module ngx_icp_gate_module ngx_rtmp_icp_gate_module);
    skip 'no dynamic build', 7 unless -f "$with_flv/objs/ngx_rtmp_icp_gate_module.so";
    run_with('nginx-http-flv-module', $with_flv,
             [qw(ngx_http_flv_live_module.so ngx_icp_gate_module.so
                 ngx_rtmp_icp_gate_module.so)],
             rtmp => 1, flv => 1);
}

$t->finish;
