#!/bin/sh
exec gitea web
