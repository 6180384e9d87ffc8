# The engine's files depend one way: each includes only the headers of the
# layers below it (README, "Architecture"), so that a change in one layer
# can never need a change below it, and the adapters never call the engine.

use v5.36;
use FindBin;
use Test::More;

my $repo = "$FindBin::Bin/..";

# src/ngx_icp_gate_NAME.{c,h} => layer; the protocol modules are above all
my %layer = (
    verdict => 0, socket => 0, throttle => 0, metrics => 0,
    hiredis => 1, resolve => 1,
    cache   => 2, redis  => 2, api => 2, api_map => 2, domain => 2,
    sentinel => 2, filings => 2, file   => 2,
    redis_conn => 2, redis_store => 2, redis_lock => 2, redis_channel => 2,
    lookup  => 3,
    judge   => 4, watch  => 4,
    module  => 5, conf   => 5, log => 5, console => 5,
);

# the dependencies within a layer: the gate directives start the engine,
# the console writes JSON strings as the rejection log does, the metrics
# count judgements in the vocabulary's terms; the Redis adapter's parts sit
# on its connections (the store's hash format serves the lock), and its
# public header, which they implement, starts them; a list of filings
# reduces its hosts as the gate does, and the file tier reads one
my %beside = (conf => { module => 1 }, console => { log => 1 },
              metrics => { verdict => 1 }, api => { api_map => 1 },
              filings => { domain => 1 }, file => { filings => 1 },
              redis => { sentinel => 1, redis_store => 1,
                         redis_channel => 1 },
              redis_conn => { redis => 1 },
              redis_store => { redis_conn => 1 },
              redis_lock => { redis_store => 1 },
              redis_channel => { redis_conn => 1 });

my @files = (glob("$repo/src/ngx_icp_gate_*.[ch]"), glob("$repo/ngx_*.c"));
my %seen;

for my $path (@files) {
    my ($file) = $path =~ m{([^/]+)$};
    my ($name) = $file =~ /^ngx_icp_gate_(\w+)\.[ch]$/;
    my $level = defined $name ? $layer{$name} : 6;

    ok defined $level, "$file has a layer" or next;
    $seen{$name} = 1 if defined $name;

    open my $fh, '<', $path or die "$path: $!";
    for my $line (<$fh>) {
        my ($dep) = $line =~ /^#include "ngx_icp_gate_(\w+)\.h"/ or next;
        next if defined $name && $dep eq $name;

        ok defined $layer{$dep}
           && ($layer{$dep} < $level || ($name && $beside{$name}{$dep})),
           "$file (layer $level) may include ngx_icp_gate_$dep.h (layer "
           . ($layer{$dep} // '?') . ')';
    }
}

is_deeply [sort grep { !$seen{$_} } keys %layer], [],
    'every layer named here is a file of src/';

done_testing;
