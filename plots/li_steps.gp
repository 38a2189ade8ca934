# The learning indicator over training steps, per layer: median (solid) and 5th
# percentile (dashed) of the per-sample LI, from the li_summary.csv of
# `aal train --li-every` (columns step,layer,min,p05,median,mean,max,count,zero_norm).
# One panel per run, one colour per layer (a line pair: median and p05).
#
#   gnuplot -e "files='ara/li_summary.csv asa/li_summary.csv'; labels='ARA ASA'; out='li_steps'" plots/li_steps.gp
#   gnuplot -e "csv='run/li_summary.csv'; label='ara:2,2,2,2'; out='run/plots/li_steps'" plots/li_steps.gp
#
# Variables: files and labels (space-separated; a name with spaces goes in double
# quotes), or csv and label for a single run; out (default 'li_steps': writes out.png
# and out.svg); title (optional overall title).  The dashed grey line is LI = 0, below
# which Theorem 1 gives no guarantee of descent.
if (!exists("out")) out = 'li_steps'
if (exists("csv")) { nf = 1 } else { if (!exists("files")) { print "li_steps.gp: give files='A/li_summary.csv B/li_summary.csv' (or csv='FILE')"; exit status 1 }; nf = words(files) }
if (nf < 1) { print "li_steps.gp: files is empty"; exit status 1 }
if (!exists("labels")) labels = ''
fname(i) = exists("csv") ? csv : word(files, i)
flabel(i) = exists("csv") ? (exists("label") ? label : csv) : (words(labels) >= i ? word(labels, i) : word(files, i))
if (!exists("title")) title = 'Learning indicator over training: median (solid) and 5th percentile (dashed) per layer'

set datafile separator ','
set datafile missing NaN
# the layers of each run, in order of first appearance (names hold no spaces)
array layers[nf]; array ylo[nf]; array yhi[nf]
L = ''
addl(s) = (strstrt(' '.L.' ', ' '.s.' ') > 0 ? 0 : (L = L.' '.s, 0))
do for [i = 1:nf] {
  L = ''
  stats fname(i) skip 1 using (addl(strcol(2)), $1) nooutput
  layers[i] = L
  stats fname(i) skip 1 using 4 nooutput
  ylo[i] = STATS_min
  stats fname(i) skip 1 using 5 nooutput
  yhi[i] = STATS_max
}

# distinct colours and markers (conv1 and the projection of one ARA block share h and r,
# so their lines coincide: the markers tell them apart)
colours = "#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #17becf #8c564b #e377c2 #7f7f7f #bcbd22"
markers = "6 4 8 10 12 14 1 2 3 7"
lcol(k) = word(colours, (k - 1) % 10 + 1)
lpt(k) = int(word(markers, (k - 1) % 10 + 1))

cols = (nf <= 2) ? nf : 2
rows = (nf + cols - 1) / cols
pw = (nf == 1) ? 820 : 700; ph = 460

do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size cols*pw, rows*ph + 40 font ',11' enhanced; set output out.'.png' } \
  else        { set terminal svg size cols*pw, rows*ph + 40 font 'Helvetica,11' enhanced; set output out.'.svg' }
  set multiplot layout rows, cols title title noenhanced
  do for [i = 1:nf] {
    Li = layers[i]
    set title flabel(i) noenhanced font ',13'
    set xlabel 'training step'; set ylabel 'learning indicator LI'
    set grid xtics ytics lc 'gray85'
    set key outside right top noenhanced font ',10' title 'layer (median / p05)'
    # a padded y range, also when every value is the same (bp: LI = 1, flip: -3)
    ys = (yhi[i] - ylo[i] > 1e-12) ? yhi[i] - ylo[i] : (abs(yhi[i]) > 0 ? 0.5 * abs(yhi[i]) : 1)
    set xrange [*:*]; set yrange [ylo[i] - 0.08 * ys : yhi[i] + 0.08 * ys]
    set xzeroaxis lt 0 lw 1.5 lc 'gray40'
    plot for [k = 1:words(Li)] fname(i) skip 1 \
           using (strcol(2) eq word(Li, k) ? $1 : NaN):5 with linespoints lw 2 pt lpt(k) ps 1.1 lc rgb lcol(k) \
           title word(Li, k), \
         for [k = 1:words(Li)] '' skip 1 \
           using (strcol(2) eq word(Li, k) ? $1 : NaN):4 with lines lw 1.5 dt 2 lc rgb lcol(k) notitle
  }
  unset multiplot
  set output
}
