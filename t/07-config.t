# A bad configuration line fails "nginx -t" with a message naming the
# directive; a good one passes.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IcpGate::Test;
use IcpGate::Conf;

my $t = IcpGate::Test->new;

sub conf_with(%o) {
    $t->write_conf(gate_conf($t, redis => 'icp_gate_redis 127.0.0.1:6379;', %o));
    return $t->nginx_test;
}

my ($code, $out) = conf_with();
is $code, 0, 'the base configuration passes nginx -t' or diag $out;

my @bad = (
    [main => 'icp_gate_zone nozone;', 'icp_gate_zone'],
    [main => 'icp_gate_zone z:1k;', 'icp_gate_zone'],
    [main => 'icp_gate_zone z:lots;', 'icp_gate_zone'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 speed=fast;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 db=x;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:notaport;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 timeout=never;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 idle=soon;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 idle=0;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 password=;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 tracking=maybe;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis sentinel=127.0.0.1:26379;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis master=mymaster;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis sentinel=127.0.0.1:x master=m;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis sentinel=,, master=m;', 'icp_gate_redis'],
    [redis => 'icp_gate_redis 127.0.0.1:6379 sentinel=127.0.0.1 master=m;', 'icp_gate_redis'],
    [api => 'icp_gate_api "ftp://127.0.0.1/{domain}";', 'icp_gate_api'],
    [api => 'icp_gate_api "http://127.0.0.1/v1/filing";', 'icp_gate_api'],
    [main => 'icp_gate_api_timeout forever;', 'icp_gate_api_timeout'],
    [main => 'icp_gate_api_concurrency 0;', 'icp_gate_api_concurrency'],
    [main => 'icp_gate_error_ttl 0;', 'icp_gate_error_ttl'],
    [main => 'icp_gate_error_ttl often;', 'icp_gate_error_ttl'],
    [main => 'icp_gate_api_concurrency many;', 'icp_gate_api_concurrency'],
    [main => 'icp_gate_api_rate fast;', 'icp_gate_api_rate'],
    [main => 'icp_gate_api_rate 10;', 'icp_gate_api_rate'],
    [main => 'icp_gate_api_rate 0/s;', 'icp_gate_api_rate'],
    [main => 'icp_gate_api_rate 5/s; icp_gate_api_rate 6/s;', 'icp_gate_api_rate'],
    [main => 'icp_gate_stale_while_revalidate later;',
     'icp_gate_stale_while_revalidate'],
    [main => 'icp_gate_ttl 0;', 'icp_gate_ttl'],
    [main => 'icp_gate_ttl soon;', 'icp_gate_ttl'],
    [main => 'icp_gate_local_ttl -1;', 'icp_gate_local_ttl'],
    [main => 'icp_gate_api_header X-Only-Name;', 'icp_gate_api_header'],
    [http => 'icp_gate maybe;', 'icp_gate'],
    [http => 'icp_gate_region moon;', 'icp_gate_region'],
    [http => 'icp_gate_wait abc;', 'icp_gate_wait'],
    [http => 'icp_gate_on_error shrug;', 'icp_gate_on_error'],
    [http => 'icp_gate_status 200;', 'icp_gate_status'],
    [http => 'icp_gate_status 9999;', 'icp_gate_status'],
    [http => 'icp_gate_log /tmp/a; icp_gate_log /tmp/b;', 'icp_gate_log'],
    [server => 'icp_gate_zone z:1m;', 'icp_gate_zone'],
    [main => 'icp_gate on;', 'icp_gate'],
    # the filing API's request and the mapping of its answers
    [main => 'icp_gate_api_method PUT;', 'icp_gate_api_method'],
    [main => 'icp_gate_api_body "{domain}";', 'icp_gate_api_body'],
    [main => 'icp_gate_api_status data/status;', 'icp_gate_api_status'],
    [main => 'icp_gate_api_status /a~2b;', 'icp_gate_api_status'],
    [main => 'icp_gate_api_status "/status~";', 'icp_gate_api_status'],
    [main => 'icp_gate_api_status /s yes=maybe;', 'icp_gate_api_status'],
    [main => 'icp_gate_api_status /s yes;', 'icp_gate_api_status'],
    [main => 'icp_gate_api_status /s absent=overseas;', 'icp_gate_api_status'],
    [main => 'icp_gate_api_status /s; icp_gate_api_status /t;',
     'icp_gate_api_status'],
    [main => 'icp_gate_api_region /r cn=moon;', 'icp_gate_api_region'],
    [main => 'icp_gate_api_region /r cn=filed;', 'icp_gate_api_region'],
    [main => 'icp_gate_api_icp licence;', 'icp_gate_api_icp'],
    [main => 'icp_gate_api_icp /a /b;', 'icp_gate_api_icp'],
    [main => 'icp_gate_api_domain d;', 'icp_gate_api_domain'],
    [main => 'icp_gate_api_success /code;', 'icp_gate_api_success'],
    [main => 'icp_gate_api_success code 0;', 'icp_gate_api_success'],
    [main => 'icp_gate_api_default_region moon;',
     'icp_gate_api_default_region'],
    [main => 'icp_gate_api_unfiled_status 200;',
     'icp_gate_api_unfiled_status'],
    [main => 'icp_gate_api_unfiled_status gone;',
     'icp_gate_api_unfiled_status'],
    [main => 'icp_gate_api_unfiled_status 404; icp_gate_api_unfiled_status 410;',
     'icp_gate_api_unfiled_status'],
    [api => 'icp_gate_api "http://127.0.0.1/v1/filing"; '
          . 'icp_gate_api_method POST; icp_gate_api_body "{}";', 'icp_gate_api'],
);

for my $case (@bad) {
    my ($where, $line, $directive) = @$case;
    my ($code, $out) = conf_with($where => $line);
    isnt $code, 0, "nginx -t fails on: $line";
    like $out, qr/"\Q$directive\E"/, "and names \"$directive\""
        or diag $out;
}

# icp_gate_zone after the first icp_gate: the zone already exists
$t->write_conf($t->conf_prelude . <<'EOF');
http {
    icp_gate on;
    server { listen 127.0.0.1:%%HTTP_PORT%%; }
}
icp_gate_zone late:1m;
EOF
($code, $out) = $t->nginx_test;
isnt $code, 0, 'icp_gate_zone after the first icp_gate fails';
like $out, qr/"icp_gate_zone" directive must come before the first "icp_gate"/,
    'and says why';

# a complete configuration with every directive
($code, $out) = conf_with(
    redis => 'icp_gate_redis 127.0.0.1:6379 db=2 password=secret timeout=500ms'
           . ' idle=10s;',
    main => 'icp_gate_zone gate:1m; icp_gate_redis_prefix "p:";'
          . ' icp_gate_api_header Authorization "Bearer x";'
          . ' icp_gate_api_timeout 1s; icp_gate_api_concurrency 16;'
          . ' icp_gate_ttl 12h; icp_gate_error_ttl 10s;'
          . ' icp_gate_negative_ttl 10m; icp_gate_local_ttl 30s;'
          . ' icp_gate_stale_while_revalidate 5s; icp_gate_api_rate 20/s;'
          . ' icp_gate_api_method POST; icp_gate_api_body "d={domain}";'
          . ' icp_gate_api_success /code 0 "0" absent;'
          . ' icp_gate_api_status "/data/0/s~1t" 1=filed -4=unfiled'
          . ' "审核中=pending" absent=error;'
          . ' icp_gate_api_icp "/data/0/备案号"; icp_gate_api_region /r'
          . ' 境内=mainland 境外=overseas x=none;'
          . ' icp_gate_api_domain /d; icp_gate_api_default_region mainland;'
          . ' icp_gate_api_unfiled_status 404 410;',
    http => 'icp_gate_region global; icp_gate_wait 2s; icp_gate_on_error allow;'
          . ' icp_gate_status 451;');
is $code, 0, 'every directive at once passes nginx -t' or diag $out;

# a presence rule without an envelope passes, with a warning why
($code, $out) = conf_with(main => 'icp_gate_api_status /data/number present;');
is $code, 0, 'icp_gate_api_status ... present alone passes nginx -t' or diag $out;
like $out, qr/\[warn\].*"icp_gate_api_status \.\.\. present" without "icp_gate_api_success"/,
    'with a warning that an error in a 200 would read as unfiled';

# Redis through Sentinel, with every parameter; a password may end in "="
($code, $out) = conf_with(
    redis => 'icp_gate_redis sentinel=127.0.0.1:26379,localhost,[::1]:26380'
           . ' master=mymaster db=1 password=c2VjcmV0= sentinel_password=s'
           . ' timeout=300ms tracking=off;');
is $code, 0, 'icp_gate_redis through Sentinel passes nginx -t' or diag $out;

done_testing;
