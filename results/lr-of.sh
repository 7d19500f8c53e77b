# Sourced by the reproduction scripts: lr_of METHOD prints the learning rate results/lr-sweep.sh
# chose over the default backbone (its table: README, "Reproduced results"); the methods' default
# rates are bert-base's and leave them at the majority baseline here. Full fine-tuning: 1e-4.
lr_of() {
  case $1 in full) echo 1e-4 ;; lora) echo 2e-3 ;; adapter) echo 4e-3 ;; layerconnect) echo 3e-2 ;; esac
}
