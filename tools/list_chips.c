/*
 * podsim list chips [--json]: every chip preset (the JSON files in sim/chips) with its
 * derived peak (2 x TensorCores x MXUs x rows x cols x clock) next to the
 * published one, HBM, on-chip memories and topology. --json prints one JSON
 * array of every field of every chip (chip_to_json), in SI units (bytes,
 * bytes/s, Hz, FLOP/s, s).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sim/chip.h"

static const char row_fmt[] = "%-8s %-12s %7s %8s %8s %8s %8s %8s %6s  %s\n";

static void print_row(const Chip *c)
{
	char arr[32], clock[24], peak[16], publ[16], hbm[16], hbmbw[16], vmem[16], cmem[16],
		ici[64];
	snprintf(arr, sizeof arr, "%dx%dx%dx%d", c->tensorcores, c->mxus_per_core, c->mxu_rows,
	         c->mxu_cols);
	snprintf(clock, sizeof clock, "%.0f%s", c->clock_hz / 1e6, c->clock_from_peak ? "*" : "");
	snprintf(peak, sizeof peak, "%.1f", c->peak_flops / 1e12);
	snprintf(publ, sizeof publ, "%.1f", c->peak_flops_published / 1e12);
	snprintf(hbm, sizeof hbm, "%.1f", c->hbm_bytes / (1024.0 * 1024 * 1024));
	snprintf(hbmbw, sizeof hbmbw, "%.0f", c->hbm_bw / 1e9);
	snprintf(vmem, sizeof vmem, "%.0f", c->vmem_bytes * c->tensorcores / (1024.0 * 1024));
	snprintf(cmem, sizeof cmem, "%.0f", c->cmem_bytes / (1024.0 * 1024));
	if (c->ici_ndims == 3)
		snprintf(ici, sizeof ici, "3D %dx%.0f %dx%dx%d", c->ici_links, c->ici_link_bw / 1e9,
		         c->max_slice[0], c->max_slice[1], c->max_slice[2]);
	else
		snprintf(ici, sizeof ici, "2D %dx%.0f %dx%d", c->ici_links, c->ici_link_bw / 1e9,
		         c->max_slice[0], c->max_slice[1]);
	printf(row_fmt, c->name, arr, clock, peak, publ, hbm, hbmbw, vmem, cmem, ici);
}

int list_chips(int argc, char **argv)
{
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			as_json = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: podsim list chips [--json]\n");
			return EXIT_OK;
		} else
			return usage_error("list chips", "unknown option '%s'", argv[i]);
	}
	int n = chip_preset_count();
	if (n == 0) {
		fprintf(stderr, "podsim list chips: no chip presets found (set PODSIM_CHIPS_DIR "
		        "to the sim/chips directory)\n");
		return EXIT_INPUT;
	}
	json_t *arr = as_json ? json_array() : NULL;
	if (!as_json)
		printf(row_fmt, "chip", "TCxMXUxRxC", "MHz", "TFLOP/s", "publ.", "HBM GiB",
		       "HBM GB/s", "VMEM MiB", "CMEM", "ICI: links x GB/s, max slice");
	int rc = EXIT_OK;
	for (int i = 0; i < n; i++) {
		Chip c;
		Diag d;
		diag_init(&d);
		if (chip_load(chip_preset_name(i), &c, &d) != 0) {
			fprintf(stderr, "%s\n", d.msg);
			rc = EXIT_INPUT;
			continue;
		}
		if (as_json)
			json_array_append_new(arr, chip_to_json(&c));
		else
			print_row(&c);
	}
	if (as_json) {
		char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(arr);
	} else {
		printf("\nTFLOP/s is derived (2 x TC x MXUs x rows x cols x clock, bf16); publ. is "
		       "the published peak.\n* no clock is published: derived from the published "
		       "peak (docs/hardware.md).\nVMEM and CMEM (MiB) are per chip (all TensorCores); "
		       "ICI GB/s per link, per direction.\n");
	}
	return rc;
}
