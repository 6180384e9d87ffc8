# The build's inputs are honoured: NGINX_SRC, RTMP_SRC and FLV_SRC (a tree
# or a tarball) replace the sources they name when they change, a changed
# file in a tree named counts as a change, and the build configures again
# and says what it was built from.  In a directory of its own
# (ICP_GATE_SRC), so that the suite's builds are left alone.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;

plan skip_all => 'built once, in the plain run' if $ENV{ICP_GATE_ASAN};

my $t = IcpGate::Test->new;
my $repo = $t->repo;
my $have = "$repo/build/src";
plan skip_all => 'no nginx sources in build/src (run make first)'
    unless -d "$have/nginx" && -d "$have/nginx-rtmp-module";

my $dir = $t->dir;
my $src = "$dir/src";

sub sources(%env) {
    local @ENV{keys %env} = values %env;
    my $out = `'$repo/util/sources.sh' '$src' @{[ $env{HOST} // '' ]} 2>&1`;
    is $?, 0, 'util/sources.sh ' . join(' ', map { "$_=$env{$_}" } sort keys %env)
        or diag $out;
}

sub origin($name) { ($t->read_file("$src/$name.origin") // '') =~ s/\n//r }

system('cp', '-a', "$have/nginx-rtmp-module", "$dir/rtmp-a") == 0 or die;
system('cp', '-a', "$have/nginx-rtmp-module", "$dir/rtmp-b") == 0 or die;
system('cp', '-a', "$have/nginx", "$dir/nginx-tree") == 0 or die;
open my $fh, '>>', "$dir/rtmp-b/README.md" or die;
print $fh "tree b\n";
close $fh;

# a tree, then the same tree again: nothing unpacked twice
sources(RTMP_SRC => "$dir/rtmp-a", NGINX_SRC => "$dir/nginx-tree");
like origin('nginx-rtmp-module'), qr{^\Q$dir\E/rtmp-a \(tree \d+\)$},
    'RTMP_SRC: the tree, and where it came from';
like origin('nginx'), qr{^\Q$dir\E/nginx-tree \(tree \d+\)$}, 'NGINX_SRC too';
open $fh, '>', "$src/nginx-rtmp-module/.kept" or die;
close $fh;
sources(RTMP_SRC => "$dir/rtmp-a", NGINX_SRC => "$dir/nginx-tree");
ok -e "$src/nginx-rtmp-module/.kept", 'the same source again: left as it is';

# another tree, then a file changed in it
sources(RTMP_SRC => "$dir/rtmp-b", NGINX_SRC => "$dir/nginx-tree");
like $t->read_file("$src/nginx-rtmp-module/README.md"), qr/tree b/,
    'another RTMP_SRC: unpacked again from it';
open $fh, '>>', "$dir/rtmp-b/README.md" or die;
print $fh "changed\n";
close $fh;
utime undef, undef, "$dir/rtmp-b/README.md";
sources(RTMP_SRC => "$dir/rtmp-b", NGINX_SRC => "$dir/nginx-tree");
like $t->read_file("$src/nginx-rtmp-module/README.md"), qr/changed/,
    'a file changed in the tree: unpacked again';

# the fork: the vendored tarball, or FLV_SRC
sources(HOST => 'flv', NGINX_SRC => "$dir/nginx-tree");
like origin('nginx-http-flv-module'),
    qr{vendor/nginx-http-flv-module-1\.2\.13\.tar\.gz \(sha256 aa3c87c5},
    'the fork from vendor/, checked';
system('cp', '-a', "$src/nginx-http-flv-module", "$dir/flv-tree") == 0 or die;
sources(HOST => 'flv', NGINX_SRC => "$dir/nginx-tree", FLV_SRC => "$dir/flv-tree");
like origin('nginx-http-flv-module'), qr{^\Q$dir\E/flv-tree \(tree}, 'FLV_SRC';

# a build from RTMP_SRC names it, and builds again when the tree changes
sub build(%env) {
    local @ENV{keys %env} = values %env;
    local $ENV{ICP_GATE_SRC} = $src;
    my $out = `'$repo/util/build.sh' '$dir/prefix' 2>&1`;
    is $?, 0, 'util/build.sh with ' . join(' ', sort keys %env) or diag $out;
    return $out;
}

my $out = build(RTMP_SRC => "$dir/rtmp-b", NGINX_SRC => "$dir/nginx-tree");
like $out, qr{built \Q$dir\E/prefix/sbin/nginx and icp-gate-import: nginx from \Q$dir\E/nginx-tree \(tree \d+\), nginx-rtmp-module from \Q$dir\E/rtmp-b \(tree \d+\)},
    'the build says what it was built from';
diag((split /\n/, $out)[-1]);

my $version = "$dir/rtmp-b/ngx_rtmp_version.h";
my $text = $t->read_file($version);
$text =~ s/#define NGINX_RTMP_VERSION\s+"([^"]*)"/#define NGINX_RTMP_VERSION "$1-icp-gate-t24"/
    or die "no NGINX_RTMP_VERSION in $version";
open $fh, '>', $version or die;
print $fh $text;
close $fh;
build(RTMP_SRC => "$dir/rtmp-b", NGINX_SRC => "$dir/nginx-tree");
my $binary = do { local $/; open my $b, '<:raw', "$dir/prefix/sbin/nginx" or die; <$b> };
like $binary, qr/-icp-gate-t24/, 'a change in the RTMP_SRC tree is in the new binary';

done_testing;
