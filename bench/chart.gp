# gnuplot -e "http='H'; rtmp='R'; png='P'" bench/chart.gp
# H: "label" hot_us mix_us per HTTP variant; R: "label" us per RTMP variant.

set terminal pngcairo size 1200,560 font "sans,10" noenhanced
set output png
set multiplot layout 1,2 title "nginx worker CPU time per request (lower is better)"

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics scale 0 font ",8"
set key top left
set bmargin 4

set title "HTTP"
set ylabel "µs per request"
plot http using 2:xtic(1) title "hot path (one host)", \
     '' using 3 title "host mix (10 000 hosts)"

set title "RTMP"
set ylabel "µs per publish session"
plot rtmp using 2:xtic(1) title "connect + publish" lc rgb "#4a7ab5"

unset multiplot
