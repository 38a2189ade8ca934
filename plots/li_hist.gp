# Histograms of the learning indicator LI = r^T(2h - r)/||h||^2 (SPEC section 2), one
# panel per run (rule), count on a log scale, from the li.csv of `aal train --li-every`
# (columns step,layer,sample,li; all steps and layers of a run are pooled).
#
#   gnuplot -e "files='ara/li.csv asa/li.csv'; labels='ARA ASA'; out='li_hist'" plots/li_hist.gp
#   gnuplot -e "csv='run/li.csv'; label='asa:2,2,2,2'; out='run/plots/li_hist'" plots/li_hist.gp
#
# Variables: files (space-separated; a name with spaces goes in double quotes) and labels
# (same count; default: the file names), or csv and label for a single run whose path
# may hold any character; out (default 'li_hist': writes out.png and out.svg);
# bins (default 40); title (optional overall title).
# Bars are green where LI > 0 (Theorem 1 guarantees descent), red where LI <= 0; the
# dashed line is LI = 0.  Samples with ||h|| = 0 have no LI (an empty field): they are
# counted and reported in the panel, never plotted.
if (!exists("out")) out = 'li_hist'
if (!exists("bins")) bins = 40
if (exists("csv")) { nf = 1 } else { if (!exists("files")) { print "li_hist.gp: give files='A/li.csv B/li.csv' (or csv='FILE')"; exit status 1 }; nf = words(files) }
if (nf < 1) { print "li_hist.gp: files is empty"; exit status 1 }
if (!exists("labels")) labels = ''
fname(i) = exists("csv") ? csv : word(files, i)
flabel(i) = exists("csv") ? (exists("label") ? label : csv) : (words(labels) >= i ? word(labels, i) : word(files, i))
if (!exists("title")) title = 'Learning indicator LI = r^T(2h - r) / ||h||^2 per sample (layers and steps pooled)'

set datafile separator ','
# per panel statistics: pass 1 (range) before the plot, pass 2 (counts) below
array lo[nf]; array hi[nf]; array nval[nf]; array nzero[nf]; array npos[nf]; array med[nf]
do for [i = 1:nf] {
  stats fname(i) skip 1 using 4 nooutput
  lo[i] = STATS_min; hi[i] = STATS_max; nval[i] = STATS_records; nzero[i] = STATS_invalid
  med[i] = STATS_median
  stats fname(i) skip 1 using ($4 > 0 ? 1 : 0) nooutput
  npos[i] = STATS_sum
}

cols = (nf <= 3) ? nf : 2
rows = (nf + cols - 1) / cols
pw = (nf == 1) ? 760 : 560; ph = (nf == 1) ? 480 : 400

do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size cols*pw, rows*ph + 40 font ',11' enhanced; set output out.'.png' } \
  else        { set terminal svg size cols*pw, rows*ph + 40 font 'Helvetica,11' enhanced; set output out.'.svg' }
  set multiplot layout rows, cols title title noenhanced
  do for [i = 1:nf] {
    # the x range always holds 0, so the sign of LI is visible at a glance
    a = (lo[i] < 0) ? lo[i] : 0
    b = (hi[i] > 0) ? hi[i] : 0
    span = (b - a > 0) ? b - a : 1
    a = a - 0.06 * span; b = b + 0.06 * span
    # a run with one LI value (flip: -3, bp: 1) gets bins around it, not of width 0
    w = ((hi[i] - lo[i]) > 1e-12 * span) ? (hi[i] - lo[i]) / bins : span / bins
    bin(x) = lo[i] + w * (floor((x - lo[i]) / w) + 0.5)
    set xrange [a:b]
    set logscale y; set yrange [0.7:*]; set format y '10^{%L}'
    set ytics nomirror; set mytics 10
    set xlabel 'learning indicator LI'; set ylabel 'count (samples x layers x steps)'
    set grid xtics ytics lc 'gray80'
    set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2 lw 1.5 lc 'gray30' back
    # the statistics go in the panel title, where they cannot hide a bar
    txt = sprintf("n = %d,  LI > 0: %.1f%%,  ||h|| = 0 (no LI): %d\nmedian %.3g,  range [%.3g, %.3g]", \
        nval[i], nval[i] > 0 ? 100.0 * npos[i] / nval[i] : 0, nzero[i], med[i], lo[i], hi[i])
    set title flabel(i)."\n".txt noenhanced font ',10'
    set style fill solid 0.8 noborder
    set boxwidth w
    plot fname(i) skip 1 using (bin($4)):(1) smooth frequency with boxes \
         lc rgb 'forest-green' notitle, \
         '' skip 1 using (bin($4) <= 0 ? bin($4) : NaN):(1) smooth frequency with boxes \
         lc rgb 'red' notitle
    unset arrow 1
  }
  unset multiplot
  set output
}
