# The paper's Table 2 against the simulator's: compression against BP (BP's bytes under
# the policy none over the cell's), one group of bars per model and policy, the ARA
# settings side by side; hollow bars are the paper's figures.  Reads the table2.csv of
# experiments/memory-tables.sh (columns model,policy,gb,compression,paper,diff,goal,met,
# rule; the rule last, with commas).
#
#   gnuplot -e "csv='runs/memory-tables/table2.csv'; out='runs/memory-tables/table2'" plots/memory_table2.gp
#
# Variables: csv (required), out (default 'memory_table2': writes out.png and out.svg).
if (!exists("csv")) { print "memory_table2.gp: give csv='table2.csv'"; exit status 1 }
if (!exists("out")) out = 'memory_table2'

set datafile separator ','
# rows with a paper rate (israte_row): every cell but BP under none (a GB figure) and
# the cells the paper does not report ('-')
# x position: 5 settings a group, a gap between groups
group(m, p) = (m eq 'resnet50' ? 0 : 3) + (p eq 'none' ? 0 : p eq 'gcp' ? 1 : 2)
# the rule's k values spill over columns 9-12 (bp has column 9 only): ara:2,2,2,2,
# ara:3,4,2,2, ara:3,4,4,2, ara:3,4,6,2 differ in columns 9 and 11
setting(d) = strcol(9) eq 'bp' ? 0 : strcol(9) eq 'ara:2' ? 1 : column(11) == 2 ? 2 : column(11) == 4 ? 3 : 4
xpos(m, p) = 6.0 * group(m, p) + setting(0)
israte_row(d) = (strcol(5) eq '-' || (strcol(2) eq 'none' && strcol(9) eq 'bp')) ? 0 : 1

set style fill solid 0.8 border -1
set boxwidth 0.4
set logscale y 2
set yrange [0.9:20]
set ylabel 'compression against BP (x)'
set grid ytics
set key top left
set xrange [-1:31]
set xtics ('ResNet-50 none' 2, 'ResNet-50 GCP' 8, 'ResNet-50 ActNN' 14, \
           'ResNet-152 none' 20, 'ResNet-152 GCP' 26) rotate by -20
set title "Table 2: activation memory after the forward pass, ImageNet 224x224, batch 512\n(in each group: BP, ARA(2,2,2,2), ARA(3,4,2,2), ARA(3,4,4,2), ARA(3,4,6,2))"

plot_cmd = "plot csv skip 1 using (israte_row(0) ? xpos(strcol(1), strcol(2)) - 0.2 : NaN):4 with boxes lc rgb '#3a7bd5' title 'aal memory', " . \
           "csv skip 1 using (israte_row(0) ? xpos(strcol(1), strcol(2)) + 0.2 : NaN):(israte_row(0) ? real(strcol(5)) : NaN) with boxes fs empty lc rgb '#222222' title 'paper'"

set terminal pngcairo size 1100,600 noenhanced
set output out . '.png'
eval plot_cmd
set terminal svg size 1100,600 noenhanced
set output out . '.svg'
eval plot_cmd
