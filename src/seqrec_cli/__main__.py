from seqrec_cli.cli.app import main

main()
