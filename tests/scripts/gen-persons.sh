#!/usr/bin/env bash
# Writes a realistic, deterministic person export (enid's default CSV columns) to stdout.
#
#   tests/scripts/gen-persons.sh N [SCHOOLS] [SEED] > persons.csv
#
# About 90% pupils in classes 1A..9C and 10% staff; Swedish names with å, ä, ö and namesakes;
# valid personnummer (Luhn-checked) for almost everyone, samordningsnummer for a few, and no
# civic number for about 1% (as for some asylum-seeking children). The numbers are test data
# with made-up birth numbers; each is unique within the file.
set -euo pipefail
N=${1:?usage: gen-persons.sh N [SCHOOLS] [SEED]}
SCHOOLS=${2:-3}
SEED=${3:-42}
awk -v n="$N" -v schools="$SCHOOLS" -v seed="$SEED" '
function luhn(s,   i, d, sum) {
  sum = 0
  for (i = 1; i <= 9; i++) {
    d = substr(s, i, 1) + 0
    if (i % 2 == 1) { d *= 2; if (d > 9) d -= 9 }
    sum += d
  }
  return (10 - sum % 10) % 10
}
function pick(arr, cnt) { return arr[int(rand() * cnt) + 1] }
BEGIN {
  srand(seed)
  ng = split("Anna Eva Maria Karin Sara Lena Emma Elin Ida Alva Ebba Wilma Saga Maja Ella Ester Åsa Märta Linnéa Zoë " \
             "Erik Lars Karl Anders Johan Per Nils Lucas Oscar William Hugo Elias Alexander Liam Noah Adam Ali Björn Örjan Jöns " \
             "Moa Tyra Stina Agnes Selma Vera Olle Sixten Malte Ture Hjalmar Aron Isak Leo Viggo Mohammed Yusuf Amira Fatima Sofía", given, " ")
  nf = split("Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson Pettersson Jonsson " \
             "Jansson Hansson Bengtsson Jönsson Lindberg Jakobsson Magnusson Lindström Olofsson Lindqvist Lindgren Berg Axelsson " \
             "Bergström Lundberg Lind Lundgren Lundqvist Mattsson Berglund Fredriksson Sandberg Henriksson Åberg Öberg Ström " \
             "Ekström Hedlund Sjöberg Wallin Engström Nyström Holmberg Dahl Al-Hassan Müller Nguyen Kowalski Ö", family, " ")
  print "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date"
  for (i = 1; i <= n; i++) {
    staff = (i % 10 == 0)
    school = sprintf("SKOLA%d", (i % schools) + 1)
    # Unique civic numbers: a per-role counter picks the date and the birth number.
    if (staff) {
      k = ks++; y0 = 1960; D = 40 * 336
      grade = int(rand() * 9) + 1
      groups = sprintf("%d%s|%d%s", grade, substr("ABC", int(rand()*3)+1, 1), grade, substr("ABC", int(rand()*3)+1, 1))
      role = "staff"
    } else {
      k = kp++; y0 = 2010; D = 9 * 336
      grade = 0
      role = "student"
    }
    d = k % D
    year = y0 + int(d / 336); month = int((d % 336) / 28) + 1; day = d % 28 + 1
    if (!staff) { grade = 2019 - year; groups = sprintf("%d%s", grade, substr("ABC", int(rand()*3)+1, 1)) }
    serial = sprintf("%03d", 100 + int(k / D))
    if (rand() < 0.01) { civic = "" }
    else {
      if (rand() < 0.02) day += 60
      base = sprintf("%02d%02d%02d%s", year % 100, month, day, serial)
      civic = sprintf("%04d%02d%02d%s%d", year, month, day, serial, luhn(base))
    }
    g = pick(given, ng); f = pick(family, nf)
    if (rand() < 0.1) g = g " " pick(given, ng)
    printf "P%07d,%s,%s,%s,%s,%s,%s,,\n", i, g, f, civic, role, school, groups
  }
}'
