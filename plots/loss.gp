# Training loss of several runs on one chart, from the metrics.csv of `aal train`
# (columns step,epoch,lr,loss,train_acc,val_loss,val_acc,tape_bytes,tape_bytes_f32,seconds).
# Thin line: the loss of each step's mini-batch; thick line: its exponential moving
# average; filled circle: the validation loss where the run evaluated.
#
#   gnuplot -e "files='bp/metrics.csv flip/metrics.csv'; labels='bp flip'; out='loss'" plots/loss.gp
#   gnuplot -e "csv='run/metrics.csv'; label='bp'; out='run/plots/loss'" plots/loss.gp
#
# Variables: files and labels (space-separated; a name with spaces goes in double
# quotes), or csv and label for a single run; out (default 'loss': writes out.png and
# out.svg); ema (smoothing weight of the moving average in [0, 1), default 0.8;
# 0 draws the raw loss only); title (optional).
if (!exists("out")) out = 'loss'
if (!exists("ema")) ema = 0.8
if (exists("csv")) { nf = 1 } else { if (!exists("files")) { print "loss.gp: give files='A/metrics.csv B/metrics.csv' (or csv='FILE')"; exit status 1 }; nf = words(files) }
if (nf < 1) { print "loss.gp: files is empty"; exit status 1 }
if (!exists("labels")) labels = ''
fname(i) = exists("csv") ? csv : word(files, i)
flabel(i) = exists("csv") ? (exists("label") ? label : csv) : (words(labels) >= i ? word(labels, i) : word(files, i))
if (!exists("title")) title = 'Training loss (cross-entropy) per step'

colours = "#000000 #1f77b4 #2ca02c #ff7f0e #d62728 #9467bd #17becf #8c564b #e377c2 #7f7f7f"
lcol(i) = word(colours, (i - 1) % 10 + 1)
# exponential moving average, restarted at each run's first row
s = 0
avg(x) = (column(0) == 0 ? (s = x) : (s = ema * s + (1 - ema) * x), s)

set datafile separator ','
set datafile missing NaN
nval = 0
do for [i = 1:nf] {
  stats fname(i) skip 1 using 6 nooutput
  nval = nval + STATS_records
}

vtitle = (nval > 0) ? 'validation' : ''

do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1000,620 font ',11' enhanced; set output out.'.png' } \
  else        { set terminal svg size 1000,620 font 'Helvetica,11' enhanced; set output out.'.svg' }
  set title title noenhanced font ',13'
  set xlabel 'training step'; set ylabel 'loss'
  set grid xtics ytics lc 'gray85'
  set key outside right top noenhanced font ',11'
  set autoscale xfix; set offsets graph 0.01, graph 0.03, 0, 0
  if (ema > 0) {
    plot for [i = 1:nf] fname(i) skip 1 using 1:4 with lines lw 1 lc rgb lcol(i) dt 3 notitle, \
         for [i = 1:nf] fname(i) skip 1 using 1:(avg($4)) with lines lw 3 lc rgb lcol(i) title flabel(i), \
         for [i = 1:nf] fname(i) skip 1 using 1:6 with points pt 7 ps 1.5 lc rgb lcol(i) notitle, \
         NaN with lines lw 1 dt 3 lc 'gray40' title 'per step', \
         NaN with lines lw 3 lc 'gray40' title sprintf('moving average (%.2g)', ema), \
         NaN with points pt 7 ps 1.5 lc 'gray40' title vtitle
  } else {
    plot for [i = 1:nf] fname(i) skip 1 using 1:4 with linespoints lw 2 pt 7 ps 0.5 lc rgb lcol(i) title flabel(i), \
         for [i = 1:nf] fname(i) skip 1 using 1:6 with points pt 7 ps 1.5 lc rgb lcol(i) notitle, \
         NaN with points pt 7 ps 1.5 lc 'gray40' title vtitle
  }
  set output
}
