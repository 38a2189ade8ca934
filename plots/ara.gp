# The ARA-like network of `aal theorem --ara --trace FILE` (first seed of every run):
#   gnuplot -e "csv='ara-trace.csv'; beta=2; out='ara'" plots/ara.gp
# Top: the loss over steps for each rule on W3 (bp, ara, noise, flip), with all three
# layers updated (solid) and with W3 alone (dashed).  Bottom: the joint indicator
# J = sum_l <R_l, 2G_l - R_l> / sum_l ||G_l||^2 over the updated layers (with W3 alone it
# is W3's own layer indicator).  beta: the residual branch scale to show.
if (!exists("csv")) csv = 'ara-trace.csv'
if (!exists("out")) out = 'ara'
if (!exists("beta")) beta = 2
rules = "bp ara noise flip"
set datafile separator ','
set key outside right top box font ',9'
set grid
set xlabel 'step'
do for [t = 1:2] {
  if (t == 1) { set terminal pngcairo size 1000,900 font ',10' enhanced; set output out.'.png' } \
  else        { set terminal svg size 1000,900 font 'Helvetica,10' enhanced; set output out.'.svg' }
  set multiplot layout 2,1 title sprintf("ARA-like residual network (x_a = relu(W_1x), x_b = relu(x_a + %g W_2x_a), y = W_3x_b), rule on W_3", beta)
  set logscale y
  set format y '10^{%L}'
  set ylabel 'training loss'
  set yrange [0.05:20]
  set title 'solid: all layers updated (W_1, W_2 exact BP); dashed: W_3 alone (flip alone leaves the frame: 10^{34} at step 100)'
  plot for [r = 1:4] csv skip 1 using (strcol(1) eq word(rules, r) && strcol(2) eq 'all' && abs($3 - beta) < 1e-9 ? $4 : NaN):5 \
         with lines lw 2 lc r title word(rules, r).' (all)', \
       for [r = 1:4] csv skip 1 using (strcol(1) eq word(rules, r) && strcol(2) eq 'rule' && abs($3 - beta) < 1e-9 ? $4 : NaN):5 \
         with lines lw 2 dt 2 lc r title word(rules, r).' (W_3 alone)'
  unset logscale y
  set format y '%g'
  set yrange [-3.5:1.5]
  set title 'J >= 0: descent guaranteed to first order at a small enough step'
  set ylabel 'joint indicator J'
  plot for [r = 1:4] csv skip 1 using (strcol(1) eq word(rules, r) && strcol(2) eq 'all' && abs($3 - beta) < 1e-9 ? $4 : NaN):8 \
         with lines lw 2 lc r title word(rules, r).' (all)', \
       for [r = 1:4] csv skip 1 using (strcol(1) eq word(rules, r) && strcol(2) eq 'rule' && abs($3 - beta) < 1e-9 ? $4 : NaN):8 \
         with lines lw 2 dt 2 lc r title word(rules, r).' (W_3 alone)', \
       0 with lines lc 'gray30' dt 3 notitle
  unset yrange
  unset multiplot
  set output
}
