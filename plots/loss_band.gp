# Training loss of several rules over several seeds: the mean over seeds (line) inside a
# band from the lowest to the highest seed (shaded), one colour per rule.  Written by
# experiments/li-theorem.sh from the runs' metrics.csv.
#
#   gnuplot -e "csv='loss_band.csv'; names='bp ara:2,2,2,2'; out='loss'" plots/loss_band.gp
#
# csv: blocks separated by two blank lines (gnuplot's index), one per rule, rows
# step,mean,min,max (the loss after a moving average over steps); names: the rules, one
# word each, in block order; out (writes out.png and out.svg); title (optional).
if (!exists("csv")) { print "loss_band.gp: give csv='loss_band.csv'"; exit status 1 }
if (!exists("names")) { print "loss_band.gp: give names='RULE ...'"; exit status 1 }
if (!exists("out")) out = 'loss_band'
if (!exists("title")) title = 'Training loss: mean over seeds, band from the lowest to the highest seed'
set datafile separator ','
nb = words(names)
# ten distinct colours (gnuplot's default cycle repeats after eight)
array palette[10] = ['#9400d3', '#009e73', '#56b4e9', '#e69f00', '#f0e442', '#0072b2', \
                     '#e51e10', '#000000', '#a0a0a0', '#8b4513']
col(i) = palette[(i - 1) % 10 + 1]
set key outside right top noenhanced
set xlabel 'step'; set ylabel 'training loss (moving average)'
set grid lc 'gray85'
set style fill transparent solid 0.18 noborder
do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1100, 560 font ',11'; set output out.'.png' } \
  else        { set terminal svg size 1100, 560 font 'Helvetica,11'; set output out.'.svg' }
  set title title noenhanced
  plot for [i = 1:nb] csv index (i - 1) using 1:3:4 with filledcurves lc rgb col(i) notitle, \
       for [i = 1:nb] csv index (i - 1) using 1:2 with lines lw 2 lc rgb col(i) title word(names, i)
  set output
}
