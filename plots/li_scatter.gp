# Does the learning indicator predict how well a rule trains?  Two panels, one point per
# rule and seed: x = the run's median per-sample LI (left) or median gradient-alignment
# cosine (right), y = its final training loss minus BP's with the same seed (0: as good
# as BP).  Written by experiments/li-theorem.sh.
#
#   gnuplot -e "csv='scatter.csv'; names='ara:2,2,2,2 asa:all'; out='scatter'" plots/li_scatter.gp
#
# csv: blocks separated by two blank lines (gnuplot's index), one per rule, rows
# li_median,cos_median,loss_gap; names: the rules, one word each, in block order; out
# (writes out.png and out.svg); title (optional).  The dashed lines are x = 0 (Theorem 1's
# condition changes sign there) and y = 0.
if (!exists("csv")) { print "li_scatter.gp: give csv='scatter.csv'"; exit status 1 }
if (!exists("names")) { print "li_scatter.gp: give names='RULE ...'"; exit status 1 }
if (!exists("out")) out = 'li_scatter'
if (!exists("title")) title = 'Final training-loss gap to BP (same seed) against the indicators'
set datafile separator ','
nb = words(names)
# ten distinct colours (gnuplot's default cycle repeats after eight)
array palette[10] = ['#9400d3', '#009e73', '#56b4e9', '#e69f00', '#f0e442', '#0072b2', \
                     '#e51e10', '#000000', '#a0a0a0', '#8b4513']
col(i) = palette[(i - 1) % 10 + 1]
set key outside right top noenhanced
set grid lc 'gray85'
set xzeroaxis dt 2 lc 'gray30'; set yzeroaxis dt 2 lc 'gray30'
do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1300, 520 font ',11'; set output out.'.png' } \
  else        { set terminal svg size 1300, 520 font 'Helvetica,11'; set output out.'.svg' }
  set multiplot layout 1, 2 title title noenhanced
  set xlabel 'median per-sample LI of the run'
  set ylabel 'final loss - BP final loss'
  set key off
  plot for [i = 1:nb] csv index (i - 1) using 1:3 with points pt (4 + i % 10) ps 1.6 lw 2 lc rgb col(i) \
       title word(names, i)
  set xlabel 'median gradient-alignment cosine of the run'
  set ylabel ''
  set key outside right top
  plot for [i = 1:nb] csv index (i - 1) using 2:3 with points pt (4 + i % 10) ps 1.6 lw 2 lc rgb col(i) \
       title word(names, i)
  unset multiplot
  set output
}
