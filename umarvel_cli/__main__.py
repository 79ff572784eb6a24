from umarvel_cli.app import main

main()
