package IcpGate::Conf;

# The nginx.conf most tests start from: Redis and the filing API stand-in
# in the main context, one gated HTTP server whose responses carry the
# gate's variables as headers.  Options splice text into each level.

use v5.36;

use Exporter 'import';
our @EXPORT = qw(gate_conf setup_html);

# a server for the operators, on port "ops": the domain console
our $ADMIN_SERVER = <<'EOF';
    server {
        listen 127.0.0.1:%%PORT_ops%%;
        icp_gate off;
        location = /icp_gate/admin { icp_gate_admin; }
    }
EOF

# a server for the operators, on port "ops": the metrics (IcpGate::Test's
# metrics() reads them)
our $METRICS_SERVER = <<'EOF';
    server {
        listen 127.0.0.1:%%PORT_ops%%;
        icp_gate off;
        location = /metrics { icp_gate_metrics; }
    }
EOF

sub setup_html($t) {
    my $html = $t->dir . '/html';
    mkdir $html;
    for my $name ('index.html', 'live.flv', 'refused.html') {
        open my $fh, '>', "$html/$name" or die "$html/$name: $!";
        print $fh $name eq 'refused.html' ? "custom refusal page\n" : "content of $name\n";
        close $fh;
    }
    chmod 0755, $html;
}

# %o: workers, main, http, server, location, redis (line or ''), api (line
# or ''), servers (extra server blocks), listen (extra listen parameters)
sub gate_conf($t, %o) {
    setup_html($t);

    my $redis = $o{redis} // 'icp_gate_redis 127.0.0.1:%%REDIS_PORT%%;';
    my $api   = $o{api}   // 'icp_gate_api "%%API_URL%%";';
    my $main     = $o{main}     // '';
    my $http     = $o{http}     // '';
    my $server   = $o{server}   // '';
    my $location = $o{location} // '';
    my $servers  = $o{servers}  // '';
    my $listen   = defined $o{listen} ? " $o{listen}" : '';

    return $t->conf_prelude(workers => $o{workers} // 2) . <<"EOF";
$redis
$api
$main

http {
    access_log off;
    icp_gate on;
    icp_gate_log %%DIR%%/reject.log;
    $http

    server {
        listen 127.0.0.1:%%HTTP_PORT%%$listen;
        root %%DIR%%/html;

        add_header X-Result "\$icp_gate_result" always;
        add_header X-Domain "\$icp_gate_domain" always;
        add_header X-Reason "\$icp_gate_reason" always;
        add_header X-Icp "\$icp_gate_icp" always;
        $server

        location / {
            $location
        }
    }
    $servers
}
EOF
}

1;
